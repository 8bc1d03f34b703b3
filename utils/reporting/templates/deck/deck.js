// Start reveal.js at a fixed 1280x720 slide size, then shrink the font of any [data-fit] box whose content
// does not fit (down to its data-fit-min), so that nothing runs off a slide. body[data-fitted="yes"] when done.
(function () {
  function overflowing(el) {
    return el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1;
  }
  function shrink(el, min) {
    var size = parseFloat(getComputedStyle(el).fontSize);
    while (overflowing(el) && size > min) {
      size -= 1;
      el.style.fontSize = size + "px";
    }
  }
  // [data-fit-wrap]: one line if it fits at data-fit-line (px) or more, else wrapped from the original size down
  function fit(el) {
    var min = parseFloat(el.dataset.fitMin || "14");
    if (!el.hasAttribute("data-fit-wrap")) return shrink(el, min);
    var original = el.style.fontSize;
    shrink(el, parseFloat(el.dataset.fitLine || min));
    if (overflowing(el)) {
      el.style.fontSize = original;
      el.style.whiteSpace = "normal";
      shrink(el, min);
    }
  }
  function fitAll() {
    document.querySelectorAll(".reveal .slides [data-fit]").forEach(fit);
    document.body.dataset.fitted = "yes";
  }
  Reveal.initialize({
    width: 1280, height: 720, margin: 0, minScale: 0.2, maxScale: 2.0,
    center: false, hash: true, controls: true, progress: true, slideNumber: "c/t",
    transition: "none", viewDistance: 100, mobileViewDistance: 100,
    pdfMaxPagesPerSlide: 1, pdfSeparateFragments: false, showNotes: false,
    plugins: [RevealNotes]
  }).then(fitAll);
  Reveal.on("pdf-ready", fitAll);
})();
