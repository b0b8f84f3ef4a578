"""robonav.hil: the hardware-in-the-loop bench (docs/design.md floor 5: imports sim, runtime, eval).

- ``simrobot``  `SimRobot`: the simulator as a robot behind the robot wire (`robonav sim-robot`)
- ``faults``    `FaultConfig` and the byte-level faults; ``proxy``: `FaultProxy`, the UDP process between the sides
- ``runner``    `run_hil`: proxy, runtime and sim-robot as processes, one merged report and verdict (`robonav hil`)
"""
