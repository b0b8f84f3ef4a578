"""robonav.sensors: raw sensor frames and the Numba preprocessing shared by sim and robot (numpy + numba only)."""

from robonav.sensors.frame import ScanSpec, ScanSpecError, SensorFrame, delta_from_wheel_speeds

__all__ = ["ScanSpec", "ScanSpecError", "SensorFrame", "delta_from_wheel_speeds"]
