"""The names the command line offers as choices, in a module with no imports, so that building the ``daflow``
parser (``daflow --help``) loads neither torch nor OpenCV. The library modules take their constants from here;
``tests/test_cli_help.py`` checks that the names agree with the library's presets."""

FLOW_FILE_FORMATS = ("flo", "npy", "png", "flo5")  # daflow estimate --format (daflow.inference)
LABEL_FORMATS = ("flo", "flo5", "npy")  # daflow pseudo-gt --format (daflow.train.pseudo_gt)
MIRROR_KINDS = ("frames", "video", "sintel", "spring", "tartanair", "youhq")  # daflow degrade KIND
SYNTHETIC_PRESET_NAMES = ("default", "large-motion", "tiny")  # daflow.data.synthetic.SYNTHETIC_PRESETS
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")  # --dtype (daflow.models.precision)


def module_doc(name: str) -> str:
    """The docstring of module ``name`` read from its source, without importing it (help texts)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return ""
    with open(spec.origin, encoding="utf-8") as fh:
        return ast.get_docstring(ast.parse(fh.read())) or ""
