/* Loaded just before @jupyter-widgets/html-manager's embed-amd.js (book/_ext/offline_widgets.py).
 *
 * 1. The bundle finds its icon fonts next to the AMD module "@jupyter-widgets/html-manager/dist/...",
 *    which require.js resolves against the page's folder: map it to the folder of the bundle.
 * 2. @jupyter-widgets/base typesets widget labels with MathJax 2 (MathJax.Hub.Queue); the book runs
 *    MathJax 3, which has no Hub: give it one that calls MathJax 3's typesetPromise.
 */
(function () {
  var me = document.currentScript;
  var dist = me && me.getAttribute("data-html-manager-dist");
  if (dist && window.require && window.require.config) {
    require.config({paths: {"@jupyter-widgets/html-manager/dist": new URL(dist, me.src).href.replace(/\/$/, "")}});
  }
  function addHub() {
    var mj = window.MathJax;
    if (!mj || mj.Hub || !mj.startup) return;
    mj.Hub = {
      Queue: function (job) {
        var el = job && job[2];
        var ready = mj.startup.promise || Promise.resolve();
        ready.then(function () { return mj.typesetPromise ? mj.typesetPromise(el ? [el] : undefined) : null; })
             .catch(function (err) { console.warn("MathJax could not typeset a widget label:", err); });
      }
    };
  }
  document.addEventListener("DOMContentLoaded", addHub);
  window.addEventListener("load", addHub);
})();
