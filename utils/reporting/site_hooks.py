"""mkdocs hooks of the report site (mkdocs.yml `hooks:`): keep every page offline.

mkdocs-jupyter's notebook template loads MathJax and Mermaid from a CDN (and with no MathJax URL set, a
`<script src="">` that fetches the page itself). The notebooks hold no math and no diagrams, so both are removed.
"""

import re

__all__ = ["on_post_page"]

_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_MERMAID = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*?</script>", re.S)
_EMPTY_SCRIPT = re.compile(r"<script src=\"\"\s*>\s*</script>")


def _strip_remote_scripts(page: str) -> str:
    return _EMPTY_SCRIPT.sub("", _MERMAID.sub("", _MATHJAX.sub("", page)))


def on_post_page(output: str, page, config) -> str:  # noqa: ARG001 - the mkdocs hook signature
    return _strip_remote_scripts(output)
