// Start reveal.js at a fixed 1280x720 slide size, then shrink the font of any [data-fit] box whose content
// does not fit (down to its data-fit-min), so that nothing runs off a slide. body[data-fitted="yes"] when done.
(function () {
  function overflowing(el) {
    return el.scrollHeight > el.clientHeight + 1 || el.scrollWidth > el.clientWidth + 1;
  }
  function fit(el) {
    var min = parseFloat(el.dataset.fitMin || "14");
    var size = parseFloat(getComputedStyle(el).fontSize);
    while (overflowing(el) && size > min) {
      size -= 1;
      el.style.fontSize = size + "px";
    }
    if (overflowing(el) && el.hasAttribute("data-fit-wrap") && el.style.whiteSpace !== "normal") {
      el.style.whiteSpace = "normal";
      fit(el);
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
