"""The tasks and datasets of the labs, all seedable and batched (time-major).

Memory:   AddingProblem, TemporalOrder (Hochreiter & Schmidhuber 1997), CopyTask (Arjovsky et al. 2016)
Text:     CharLM on a real public-domain novel shipped in gated_lib/data (load_text, CharVocab)
Language: AgreementTask ("I grew up in France ... I speak fluent French", controllable distance),
          SentimentTask (reviews with negation: "not good" is negative, "not bad" positive)

The generators are numpy functions (adding_problem, temporal_order, copy_task, ...); the Task classes
wrap them for gated_lib.training (torch is imported only when a batch is converted or a loss computed).
"""

from gated_lib.tasks.base import Batch, Task, as_generator
from gated_lib.tasks.memory import (AddingProblem, CopyTask, TemporalOrder, TEMPORAL_ORDER_CLASSES,
                                    TEMPORAL_ORDER_SYMBOLS, adding_problem, adding_target_moments,
                                    copy_baseline_loss, copy_task, temporal_order)
from gated_lib.tasks.text import CharLM, CharVocab, TEXTS, load_text, sample_text
from gated_lib.tasks.language import AgreementTask, SentimentTask, agreement_examples, sentiment_examples

__all__ = [
    "Batch", "Task", "as_generator",
    "AddingProblem", "TemporalOrder", "CopyTask", "TEMPORAL_ORDER_SYMBOLS", "TEMPORAL_ORDER_CLASSES",
    "adding_problem", "adding_target_moments", "temporal_order", "copy_task", "copy_baseline_loss",
    "CharLM", "CharVocab", "TEXTS", "load_text", "sample_text",
    "AgreementTask", "SentimentTask", "agreement_examples", "sentiment_examples",
]
