"""Fused from-equations layers: the same equations as functional.py, with a hand-written BPTT.

Why this is faster than letting autograd differentiate the step functions: autograd records ~15
small nodes per step and replays them one by one; at B=64, H=256 each elementwise op is ~16k
numbers, so per-op overhead, not arithmetic, is what costs. Here

* the input projection is one GEMM for all T (forward) and so are its three gradients (backward):
  dx = dA W_ih, dW_ih = dA^T x, dW_hh = dA^T h_prev, with dA (T*B, G*H) the stacked gate gradients;
* every derivative factor that does not depend on the incoming gradient (sigma' = s(1 - s),
  tanh' = 1 - t^2, and their products with the other gate values) is computed for all T at once,
  with a dozen large ops at the end of the forward instead of a dozen small ops per step, so the
  backward loop itself is ~6 ops and one GEMM per step;
* buffers are preallocated and written with out=, so no per-step allocation for saved values;
* elementwise ops stay per gate, (B, H) each: an op over more than 32k numbers opens an OpenMP
  parallel region, which on a shared 2-core machine waits for a descheduled thread.

Which implementation to use was measured on the course's 2-core CPU (docs/torch_path.md): this
custom autograd Function, rather than torch.compile (250 s to compile the unrolled T=100 loop, a C++
compiler required; compiling only the step made it slower than eager) or TorchScript (deprecated,
and this torch build has no CPU fuser).

Each Function takes (x (T, B, D), initial state (B, H)..., weights) and returns (out (T, B, H),
final state...). They are checked against autograd on the step functions with
torch.autograd.gradcheck in float64 (tests/test_torch_parity.py).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def _sum_bias(*biases):
    present = [b for b in biases if b is not None]
    if not present:
        return None
    out = present[0]
    for b in present[1:]:
        out = out + b
    return out


def _project(x, weight_ih, bias):
    T, B, D = x.shape
    x2 = x.reshape(T * B, D)
    xp = torch.mm(x2, weight_ih.t()) if bias is None else torch.addmm(bias, x2, weight_ih.t())
    return xp.view(T, B, -1)


def _prev(first, seq):
    """(T, B, H) of the states *entering* each step: first, seq[0], ..., seq[T-2]."""
    return torch.cat([first.unsqueeze(0), seq[:-1]], 0)


def _input_grads(ctx, dA, x, weight_ih, bias_index: int):
    """dx, dW_ih, db_ih from the stacked pre-activation gradients dA (T, B, G*H)."""
    T, B, D = x.shape
    dA2 = dA.reshape(T * B, -1)
    dx = torch.mm(dA2, weight_ih).view(T, B, D) if ctx.needs_input_grad[0] else None
    dW_ih = torch.mm(dA2.t(), x.reshape(T * B, D)) if ctx.needs_input_grad[bias_index - 2] else None
    db = dA2.sum(0) if ctx.needs_input_grad[bias_index] else None
    return dx, dW_ih, db


# torch's gate order is i, f, g, o; internally the LSTM runs in the order i, f, o, g, so that the
# three sigmoid gates are one contiguous block.
_LSTM_PERM = [0, 1, 3, 2]


def _permute_gates(t, perm, H):
    """Reorder the G row blocks (each H rows) of a weight (G*H, ...) or bias (G*H,)."""
    return t.view(len(perm), H, *t.shape[1:])[perm].reshape(t.shape)


class LSTMFunction(torch.autograd.Function):
    """LSTM layer (gates i, f, g, o) with a hand-written BPTT.

    The recurrent product is computed gate-major, (4, B, H) = baddbmm(xp_t, h, W_hh^T per gate), so
    that every elementwise op below runs on contiguous (B, H) blocks. The derivative factors that
    the backward needs are computed at the end of the forward, for all T at once:

        P = [g s_i, c_prev s_f, tanh(c) s_o, i (1 - g^2)]   (s = sigma (1 - sigma))
        R = o (1 - tanh(c)^2)
    so that the backward step is   dc += dh R;  dA_o = dh P_o;  dA_{i,f,g} = dc P_{i,f,g};  dc *= f.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
        T, B, D = x.shape
        H = weight_hh.shape[1]
        grad = any(ctx.needs_input_grad)
        b = _sum_bias(bias_ih, bias_hh)
        W_ih = _permute_gates(weight_ih, _LSTM_PERM, H)
        W_hh_g = weight_hh.view(4, H, H)[_LSTM_PERM].transpose(1, 2).contiguous()   # (4, H, H): W_k^T
        x2 = x.reshape(T * B, D)
        xp = torch.mm(x2, W_ih.t()) if b is None else torch.addmm(_permute_gates(b, _LSTM_PERM, H), x2, W_ih.t())
        xp = xp.view(T, B, 4, H).permute(2, 0, 1, 3)                  # (4, T, B, H), a view
        out = x.new_empty(T, B, H)                                    # h_1 .. h_T
        cs = x.new_empty(T, B, H)                                     # c_1 .. c_T
        tcs = x.new_empty(T, B, H)                                    # tanh(c_t)
        acts = x.new_empty(T, 4, B, H)                                # i, f, o, g after their nonlinearity
        h, c = h0, c0
        for t in range(T):
            act = acts[t]
            torch.baddbmm(xp[:, t], h.expand(4, B, H), W_hh_g, out=act)
            i, f, o, g = act.unbind(0)
            i.sigmoid_()
            f.sigmoid_()
            o.sigmoid_()
            g.tanh_()
            ct = cs[t]
            torch.mul(f, c, out=ct)
            ct.addcmul_(i, g)
            torch.tanh(ct, out=tcs[t])
            torch.mul(o, tcs[t], out=out[t])
            h, c = out[t], ct
        if grad:
            # Derivative factors for all T at once: a dozen large ops beat a dozen small ops per step.
            i, f, o, g = acts.unbind(1)
            P = x.new_empty(T, 4, B, H)
            torch.addcmul(acts[:, :3], acts[:, :3], acts[:, :3], value=-1, out=P[:, :3])   # s (1 - s)
            P[:, 0].mul_(g)
            P[0, 1].mul_(c0)
            P[1:, 1].mul_(cs[:-1])
            P[:, 2].mul_(tcs)
            torch.mul(i, g, out=P[:, 3])
            P[:, 3].mul_(g)
            torch.sub(i, P[:, 3], out=P[:, 3])                       # i (1 - g^2)
            R = torch.mul(o, tcs)
            R.mul_(tcs)
            torch.sub(o, R, out=R)                                    # o (1 - tanh(c)^2)
            ctx.save_for_backward(x, h0, weight_ih, weight_hh, out, acts, P, R)
        ctx.has_bias = (bias_ih is not None, bias_hh is not None)
        return out, out[-1].clone(), cs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n, dc_n):
        x, h0, weight_ih, weight_hh, out, acts, P, R = ctx.saved_tensors
        T, B, D = x.shape
        H = weight_hh.shape[1]
        W_hh = _permute_gates(weight_hh, _LSTM_PERM, H)
        dA = x.new_empty(T, B, 4 * H)                                 # dL/d(pre-activations), order i, f, o, g
        dh = dh_n + dout[-1]
        dc = dc_n.clone()
        for t in range(T - 1, -1, -1):
            d = dA[t].view(B, 4, H).transpose(0, 1)                  # (4, B, H) view into (B, 4H)
            p = P[t]
            dc.addcmul_(dh, R[t])
            torch.mul(dh, p[2], out=d[2])
            torch.mul(dc, p[0], out=d[0])
            torch.mul(dc, p[1], out=d[1])
            torch.mul(dc, p[3], out=d[3])
            dc.mul_(acts[t, 1])                                       # the direct path: dc_{t-1} = f_t dc_t
            dh = torch.addmm(dout[t - 1], dA[t], W_hh) if t > 0 else torch.mm(dA[0], W_hh)
        inv = _LSTM_PERM                                              # this permutation is its own inverse
        dA2 = dA.view(T * B, 4 * H)
        dx = torch.mm(dA2, _permute_gates(weight_ih, _LSTM_PERM, H)).view(T, B, D) if ctx.needs_input_grad[0] else None
        dW_ih = _permute_gates(torch.mm(dA2.t(), x.reshape(T * B, D)), inv, H) if ctx.needs_input_grad[3] else None
        dW_hh = (_permute_gates(torch.mm(dA2.t(), _prev(h0, out).view(T * B, H)), inv, H)
                 if ctx.needs_input_grad[4] else None)
        db = _permute_gates(dA2.sum(0), inv, H) if (ctx.needs_input_grad[5] or ctx.needs_input_grad[6]) else None
        return (dx, dh, dc, dW_ih, dW_hh, db if ctx.has_bias[0] else None, db if ctx.has_bias[1] else None)


class GRUFunction(torch.autograd.Function):
    """GRU layer, PyTorch/cuDNN convention (gates r, z, n; reset after the matmul)."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        T, B, _ = x.shape
        H = weight_hh.shape[1]
        xp = _project(x, weight_ih, bias_ih)                      # (T, B, 3H)
        WT = weight_hh.t()
        out = x.new_empty(T, B, H)
        gates = x.new_empty(T, B, 3 * H)                          # r, z, n after their nonlinearity
        hns = x.new_empty(T, B, H)                                # h W_hn^T + b_hn, needed for dr
        hp = x.new_empty(B, 3 * H)
        h = h0
        for t in range(T):
            if bias_hh is None:
                torch.mm(h, WT, out=hp)
            else:
                torch.addmm(bias_hh, h, WT, out=hp)
            gt = gates[t]
            torch.add(xp[t, :, :2 * H], hp[:, :2 * H], out=gt[:, :2 * H]).sigmoid_()
            hns[t].copy_(hp[:, 2 * H:])
            n = gt[:, 2 * H:]
            torch.addcmul(xp[t, :, 2 * H:], gt[:, :H], hns[t], out=n).tanh_()
            torch.sub(h, n, out=out[t])
            out[t].mul_(gt[:, H:2 * H]).add_(n)                   # h' = n + z (h - n)
            h = out[t]
        ctx.save_for_backward(x, h0, weight_ih, weight_hh, out, gates, hns)
        ctx.has_bias = (bias_ih is not None, bias_hh is not None)
        return out, out[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n):
        x, h0, weight_ih, weight_hh, out, gates, hns = ctx.saved_tensors
        T, B, _ = x.shape
        H = weight_hh.shape[1]
        r, z, n = gates.split(H, dim=-1)
        h_prev = _prev(h0, out)
        A = (1 - z) * (1 - n * n)                                 # dA_n = dh * A
        # dA_hh = [dA_r, dA_z, dA_n * r] = dh * K
        K = torch.cat([A * hns * r * (1 - r), (h_prev - n) * z * (1 - z), A * r], -1).view(T, B, 3, H)
        dAh = x.new_empty(T, B, 3 * H)                            # gradients of h W_hh^T + b_hh
        dhs = x.new_empty(T, B, H)                                # total dL/dh_t, kept for dA_n
        dhs[-1] = dh_n + dout[-1]
        for t in range(T - 1, -1, -1):
            dh = dhs[t]
            torch.mul(K[t], dh.unsqueeze(1), out=dAh[t].view(B, 3, H))
            if t > 0:
                torch.addmm(torch.addcmul(dout[t - 1], dh, z[t]), dAh[t], weight_hh, out=dhs[t - 1])
            else:
                dh0 = torch.addmm(dh * z[0], dAh[0], weight_hh)
        dAx = dAh.clone()
        dAx[..., 2 * H:] = dhs * A                                # b_in sits outside r * (.)
        dx, dW_ih, db_ih = _input_grads(ctx, dAx, x, weight_ih, 4)
        dAh2 = dAh.view(T * B, 3 * H)
        dW_hh = torch.mm(dAh2.t(), h_prev.view(T * B, H)) if ctx.needs_input_grad[3] else None
        db_hh = dAh2.sum(0) if ctx.needs_input_grad[5] else None
        return dx, dh0, dW_ih, dW_hh, db_ih, db_hh


class GRUChoFunction(torch.autograd.Function):
    """GRU layer, Cho et al. 2014 convention (reset before the matmul): two GEMMs per step."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        T, B, _ = x.shape
        H = weight_hh.shape[1]
        xp = _project(x, weight_ih, _sum_bias(bias_ih, bias_hh))  # every bias is outside r * (.) here
        W_rz_T, W_n_T = weight_hh[:2 * H].t(), weight_hh[2 * H:].t()
        out = x.new_empty(T, B, H)
        gates = x.new_empty(T, B, 3 * H)
        rh = x.new_empty(B, H)
        h = h0
        for t in range(T):
            gt = gates[t]
            torch.addmm(xp[t, :, :2 * H], h, W_rz_T, out=gt[:, :2 * H]).sigmoid_()
            torch.mul(gt[:, :H], h, out=rh)
            n = gt[:, 2 * H:]
            torch.addmm(xp[t, :, 2 * H:], rh, W_n_T, out=n).tanh_()
            torch.sub(h, n, out=out[t])
            out[t].mul_(gt[:, H:2 * H]).add_(n)
            h = out[t]
        ctx.save_for_backward(x, h0, weight_ih, weight_hh, out, gates)
        ctx.has_bias = (bias_ih is not None, bias_hh is not None)
        return out, out[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n):
        x, h0, weight_ih, weight_hh, out, gates = ctx.saved_tensors
        T, B, _ = x.shape
        H = weight_hh.shape[1]
        W_rz, W_n = weight_hh[:2 * H], weight_hh[2 * H:]
        r, z, n = gates.split(H, dim=-1)
        h_prev = _prev(h0, out)
        # [dA_z, dA_n] = dh * K;   dA_r = d(r*h) * Cr
        K = torch.cat([(h_prev - n) * z * (1 - z), (1 - z) * (1 - n * n)], -1).view(T, B, 2, H)
        Cr = h_prev * r * (1 - r)
        dA = x.new_empty(T, B, 3 * H)
        dh = dh_n + dout[-1]
        for t in range(T - 1, -1, -1):
            torch.mul(K[t], dh.unsqueeze(1), out=dA[t, :, H:].view(B, 2, H))
            drh = torch.mm(dA[t, :, 2 * H:], W_n)                 # d(r * h_prev)
            torch.mul(drh, Cr[t], out=dA[t, :, :H])
            nxt = torch.addcmul(dout[t - 1], dh, z[t]) if t > 0 else dh * z[0]
            nxt.addcmul_(drh, r[t])
            dh = torch.addmm(nxt, dA[t, :, :2 * H], W_rz)
        dx, dW_ih, db_ih = _input_grads(ctx, dA, x, weight_ih, 4)
        dW_hh = None
        if ctx.needs_input_grad[3]:
            dA2 = dA.view(T * B, 3 * H)
            dW_hh = torch.cat([torch.mm(dA2[:, :2 * H].t(), h_prev.view(T * B, H)),
                               torch.mm(dA2[:, 2 * H:].t(), (r * h_prev).view(T * B, H))], 0)
        db_hh = None
        if ctx.has_bias[1] and ctx.needs_input_grad[5]:
            db_hh = db_ih if db_ih is not None else dA.view(T * B, -1).sum(0)
        if not ctx.has_bias[0]:
            db_ih = None
        return dx, dh, dW_ih, dW_hh, db_ih, db_hh


class RNNFunction(torch.autograd.Function):
    """Vanilla RNN layer, h' = act(xp + h W_hh^T + b_hh), act = tanh or relu."""

    @staticmethod
    def forward(ctx, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, relu: bool):
        T, B, _ = x.shape
        H = weight_hh.shape[1]
        xp = _project(x, weight_ih, _sum_bias(bias_ih, bias_hh))
        WT = weight_hh.t()
        out = x.new_empty(T, B, H)
        h = h0
        for t in range(T):
            torch.addmm(xp[t], h, WT, out=out[t])
            out[t].relu_() if relu else out[t].tanh_()
            h = out[t]
        ctx.save_for_backward(x, h0, weight_ih, weight_hh, out)
        ctx.has_bias = (bias_ih is not None, bias_hh is not None)
        ctx.act_relu = relu
        return out, out[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dh_n):
        x, h0, weight_ih, weight_hh, out = ctx.saved_tensors
        T, B, _ = x.shape
        H = weight_hh.shape[1]
        D = (out > 0).to(out.dtype) if ctx.act_relu else 1 - out * out
        dA = x.new_empty(T, B, H)
        dh = dh_n + dout[-1]
        for t in range(T - 1, -1, -1):
            torch.mul(dh, D[t], out=dA[t])
            dh = torch.addmm(dout[t - 1], dA[t], weight_hh) if t > 0 else torch.mm(dA[0], weight_hh)
        dx, dW_ih, db = _input_grads(ctx, dA, x, weight_ih, 4)
        dW_hh = torch.mm(dA.view(T * B, H).t(), _prev(h0, out).view(T * B, H)) if ctx.needs_input_grad[3] else None
        if db is None and ctx.needs_input_grad[5]:
            db = dA.view(T * B, H).sum(0)
        return (dx, dh, dW_ih, dW_hh, db if ctx.has_bias[0] else None,
                db if ctx.has_bias[1] else None, None)


def lstm_layer(x, state, p):
    out, h, c = LSTMFunction.apply(x, state[0], state[1], p["weight_ih"], p["weight_hh"],
                                   p.get("bias_ih"), p.get("bias_hh"))
    return out, (h, c)


def gru_layer(x, state, p):
    out, h = GRUFunction.apply(x, state[0], p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))
    return out, (h,)


def gru_cho_layer(x, state, p):
    out, h = GRUChoFunction.apply(x, state[0], p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))
    return out, (h,)


def rnn_tanh_layer(x, state, p):
    out, h = RNNFunction.apply(x, state[0], p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"), False)
    return out, (h,)


def rnn_relu_layer(x, state, p):
    out, h = RNNFunction.apply(x, state[0], p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"), True)
    return out, (h,)


# cell name -> fused layer(x, state, p) -> (out, state)
FUSED = {
    "lstm": lstm_layer,
    "gru": gru_layer,
    "gru_cho": gru_cho_layer,
    "rnn_tanh": rnn_tanh_layer,
    "rnn_relu": rnn_relu_layer,
}
