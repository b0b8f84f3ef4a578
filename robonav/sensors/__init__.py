"""robonav.sensors: raw sensor frames and the Numba preprocessing shared by sim and robot (numpy + numba only).

``Preprocessor(spec)(frame, last_command) -> obs``: scan bins, odometry, obstacle and trajectory memory
patches and the goal vector, in one allocation-free Numba call (robonav.sensors.preprocessor). Its NumPy
specification is robonav.sensors.reference.ReferencePreprocessor.
"""

from robonav.sensors.frame import ScanSpec, ScanSpecError, SensorFrame, delta_from_wheel_speeds
from robonav.sensors.preprocessor import Preprocessor, SensorFrameError
from robonav.sensors.spec import (
    Block,
    ObservationSpec,
    ObservationSpecError,
    PreprocessorConfig,
    PreprocessorConfigError,
)

__all__ = [
    "Block",
    "ObservationSpec",
    "ObservationSpecError",
    "Preprocessor",
    "PreprocessorConfig",
    "PreprocessorConfigError",
    "ScanSpec",
    "ScanSpecError",
    "SensorFrame",
    "SensorFrameError",
    "delta_from_wheel_speeds",
]
