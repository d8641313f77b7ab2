"""What every `thawslump:` algorithm shares: identity from class attributes, cancel support,
feedback as the engine's Progress, engine errors as
Processing errors. Layers as files and engine features as QGIS features: qgis_common/layer_adapters.py.

Algorithm modules import the engine only inside processAlgorithm, so the provider loads (and
qgis_process lists it) cheaply and even where torch is missing.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, Tuple, TypeVar

from qgis.core import QgsProcessingAlgorithm, QgsProcessingException

from ..qgis_common.layer_adapters import raster_file_path

if TYPE_CHECKING:
    from ..core.progress import Progress

T = TypeVar("T")


class ThawSlumpAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set NAME, DISPLAY_NAME, GROUP, GROUP_ID and HELP, and write
    initAlgorithm and processAlgorithm."""

    NAME = ""
    DISPLAY_NAME = ""
    GROUP = ""
    GROUP_ID = ""
    HELP = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802 (QGIS's names)
        return self.DISPLAY_NAME

    def group(self) -> str:
        return self.GROUP

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP_ID

    def shortHelpString(self) -> str:  # noqa: N802
        # Shown beside the dialog's parameters and by `qgis_process help`.
        return f"{self.HELP}\n\nDocumentation: {self.helpUrl()}"

    def helpUrl(self) -> str:  # noqa: N802 (the dialog's Help button opens it)
        from .parameter_help import docs_url

        return docs_url(self.NAME)

    def addParameter(self, definition, createOutput: bool = True) -> bool:  # noqa: N802,N803
        """Every parameter's description gains its unit and default (parameter_help.py)."""
        from .parameter_help import described

        definition.setDescription(described(self.NAME, definition))
        return super().addParameter(definition, createOutput)

    def flags(self):
        return super().flags() | QgsProcessingAlgorithm.FlagCanCancel

    def createInstance(self) -> "ThawSlumpAlgorithm":  # noqa: N802
        return type(self)()


def feedback_progress(feedback) -> "Progress":
    """The engine's Progress, reporting to and cancelled from a Processing feedback."""
    from ..core.progress import Progress

    def report(fraction: float, message: str) -> None:
        feedback.setProgress(100.0 * fraction)
        if message:
            feedback.setProgressText(message)

    return Progress(report, feedback.isCanceled)


CANCELLED_MESSAGE = "Cancelled: no output was written and no existing file was changed."


def call_engine(feedback, work: Callable[[], T], cancelled_message: str = CANCELLED_MESSAGE) -> T:
    """Run engine code, imports included: a UserError becomes a one-line QgsProcessingException,
    a missing package says where to install it, a cancel is an error too (so qgis_process
    exits non-zero), and anything unexpected is one line with the traceback in the log."""
    try:
        from ..core.errors import Cancelled, UserError
    except ImportError as err:  # pragma: no cover - the engine's own imports are light
        raise QgsProcessingException(f"The plugin is incomplete ({err}); reinstall it.") from None
    try:
        with signals_cancel(feedback):
            return work()
    except UserError as err:
        raise QgsProcessingException(str(err)) from None
    except (Cancelled, KeyboardInterrupt):
        raise QgsProcessingException(cancelled_message) from None
    except ImportError as err:
        raise QgsProcessingException(
            f"A Python package the plugin needs is missing ({err}); open the Detect thaw slumps dock to install it."
        ) from None
    except QgsProcessingException:
        raise
    except Exception as err:  # noqa: BLE001 - never a traceback as the error text
        import traceback

        feedback.pushDebugInfo(traceback.format_exc())
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise QgsProcessingException(f"Unexpected {type(err).__name__}: {first} (no output was written; please report this).") from None


@contextmanager
def signals_cancel(feedback) -> Iterator[None]:
    """Under qgis_process (algorithm on the main thread) Ctrl-C or SIGTERM cancels the feedback,
    so the engine stops at its next check and removes its temporary outputs; a second signal
    stops at once. A KeyboardInterrupt is not relied on: one raised inside a callback from C++
    or a destructor is swallowed and the run would go on. In the QGIS desktop algorithms run
    on worker threads, where nothing is changed."""
    import signal
    import threading

    previous = {}
    if threading.current_thread() is threading.main_thread():

        def handle(_signum, _frame) -> None:
            if feedback.isCanceled():
                raise KeyboardInterrupt
            feedback.cancel()

        for number in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(number) is not None:  # None: a C handler Python could not restore
                previous[number] = signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def check_cancelled(feedback) -> None:
    """Between the engine's steps and the final move into place: a cancel stops the run here."""
    if feedback is not None and feedback.isCanceled():
        raise QgsProcessingException(CANCELLED_MESSAGE)


# ---------------------------------------------------------------- outputs (engine/output_safety.py)
OVERWRITE = "OVERWRITE"
OVERWRITE_HELP = (
    "\n\nOutputs (docs/OUTPUTS.md): an existing file or layer is replaced only with 'Replace existing "
    "outputs' checked; a GeoPackage's other layers are always kept; a layer with human review edits "
    "is replaced only when the output names that layer (ogr:dbname=... table=NAME or file.gpkg|layername=NAME). "
    "Outputs are written under temporary names and moved into place when complete, so a cancel or a "
    "failure leaves every existing file as it was."
)


def add_overwrite_parameter(algorithm) -> None:
    from qgis.core import QgsProcessingParameterBoolean

    algorithm.addParameter(
        QgsProcessingParameterBoolean(OVERWRITE, "Replace existing outputs (never other layers of a GeoPackage)", defaultValue=False)
    )


def optional_number(algorithm, parameters, name: str, context, integer: bool = False) -> Optional[float]:
    """An optional number parameter's value, or None when the user left it empty (Processing would
    otherwise read an empty field as 0)."""
    if parameters.get(name) in (None, ""):
        return None
    return algorithm.parameterAsInt(parameters, name, context) if integer else algorithm.parameterAsDouble(parameters, name, context)


def parse_vector_destination(text: str, default_layer: str) -> Optional[Tuple[Path, str, bool]]:
    """(file, layer, layer named by the user) of a Processing vector destination; None for a
    memory layer. Other providers (PostGIS, ...) are refused: the rule is written for files."""
    import re

    from ..core.errors import UserError

    text = (text or "").strip()
    if not text or text.startswith("memory:"):
        return None
    if text.startswith("ogr:"):
        db = re.search(r"dbname='((?:[^']|'')*)'", text) or re.search(r'dbname="([^"]*)"', text) or re.search(r"dbname=(\S+)", text)
        table = re.search(r'table="((?:[^"]|"")*)"', text) or re.search(r"table=([^\s(]+)", text)
        if db is None:
            raise UserError(f"Cannot read the file name in the output {text!r}; give a .gpkg file.")
        layer = table.group(1).replace('""', '"') if table else default_layer
        return Path(db.group(1).replace("''", "'")), layer, table is not None
    if "|layername=" in text:
        path, _, rest = text.partition("|layername=")
        return Path(path), rest.split("|")[0], True
    if re.match(r"^[A-Za-z][A-Za-z0-9_]+:", text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        raise UserError(f"Write the polygons to a GeoPackage file; '{text.split(':')[0]}' outputs are not supported.")
    return Path(text), default_layer, False


def load_on_completion(parameters, name: str, context, source: str, default_name: str) -> None:
    """What parameterAsSink does for a layer it creates: add the final layer to the project
    when the user asked for it (the QGIS dialog's 'Open output file')."""
    from qgis.core import QgsProcessingContext, QgsProcessingOutputLayerDefinition

    definition = parameters.get(name)
    if isinstance(definition, QgsProcessingOutputLayerDefinition) and definition.destinationProject is not None:
        details = QgsProcessingContext.LayerDetails(definition.destinationName or default_name, definition.destinationProject, name)
        context.addLayerToLoadOnCompletion(source, details)


class SafeVectorOutput:
    """A polygon output under the output-safety rule. Checked on creation (before any work);
    ``sink`` returns a QGIS feature sink (into a temporary file for a file destination);
    ``commit`` moves it into place atomically and returns the value for the results."""

    def __init__(self, algorithm, parameters, name: str, context, default_layer: str, inputs=(), overwrite: bool = False) -> None:
        from ..engine.output_safety import check_vector_output

        self.algorithm, self.parameters, self.name, self.context = algorithm, parameters, name, context
        destination = parse_vector_destination(algorithm.parameterAsOutputLayer(parameters, name, context), default_layer)
        self.target = None
        self.staged = None
        if destination is not None:
            path, layer, named = destination
            self.target = check_vector_output(path, layer, inputs, overwrite, named)

    def write(self, fields, wkb_type, crs, features: Iterable, feedback) -> str:
        """Write ``features`` (QgsFeature) and return the output for the results."""
        from qgis.core import QgsFeatureSink

        if self.target is None:
            sink, dest_id = self.algorithm.parameterAsSink(self.parameters, self.name, self.context, fields, wkb_type, crs)
        else:
            from ..engine.vector_io import StagedLayer

            self.staged = StagedLayer(self.target)
            temp = str(self.staged.temp)
            uri = f"ogr:dbname='{temp}' table=\"{self.target.layer}\" (geom)" if self.target.driver == "GPKG" else temp
            sink, dest_id = self.algorithm.parameterAsSink({self.name: uri}, self.name, self.context, fields, wkb_type, crs)
        if sink is None:
            raise QgsProcessingException(self.algorithm.invalidSinkError(self.parameters, self.name))
        try:
            try:
                for feature in features:
                    check_cancelled(feedback)
                    if not sink.addFeature(feature, QgsFeatureSink.FastInsert):
                        raise QgsProcessingException(f"Cannot write a feature to the output ({sink.lastError()}); nothing was changed.")
                sink.flushBuffer()
            finally:
                del sink  # the only reference: this closes the (temporary) file before it is moved
            check_cancelled(feedback)
            if self.target is None:
                return dest_id
            self.staged.commit()
        finally:
            self.discard()
        source = str(self.target.path) + (f"|layername={self.target.layer}" if self.target.driver == "GPKG" else "")
        load_on_completion(self.parameters, self.name, self.context, source, self.target.layer)
        return source

    def discard(self) -> None:
        if self.staged is not None:
            self.staged.discard()


def raster_input(algorithm, parameters, name: str, context) -> Tuple[Optional[str], Optional[Any]]:
    """(file, layer or None) of a raster parameter. A plain file path is used as it is: loading
    it as a QGIS layer would make QGIS compute statistics and leave <file>.aux.xml beside the
    user's input. Layers (from the project, or by id) go through raster_file_path."""
    value = parameters.get(name)
    if isinstance(value, str) and value and Path(value).is_file():
        return value, None
    layer = algorithm.parameterAsRasterLayer(parameters, name, context)
    return (raster_file_path(layer), layer) if layer is not None else (None, None)
