"""Simulator settings: one dataclass per concern, each field documented (it becomes the launch file's comment)."""

from __future__ import annotations

from dataclasses import dataclass, field

from robonav.control.safety import SafetyConfig
from robonav.sensors.spec import PreprocessorConfig


@dataclass(frozen=True)
class RobotConfig:
    """A TurtleBot-class differential-drive robot."""

    radius: float = 0.18
    """Body radius (m)."""
    height: float = 0.2
    """Body height (m); the scanner sits at 3/4 of it."""
    mass: float = 1.5
    """Body mass (kg)."""
    v_max: float = 0.5
    """Hardware linear speed limit (m/s)."""
    omega_max: float = 2.0
    """Hardware turn-rate limit (rad/s)."""
    accel_max: float = 1.5
    """Motor linear acceleration limit (m/s^2), applied before physics."""
    alpha_max: float = 6.0
    """Motor angular acceleration limit (rad/s^2)."""
    wheel_friction: float = 1.0
    """Traction coefficient: the drive force is capped at wheel_friction * mass * g."""
    wall_friction: float = 0.2
    """Coulomb friction between the body and walls (low: a bumper slides)."""


@dataclass(frozen=True)
class ScannerConfig:
    """Nominal 2D range scanner (a LaserScan)."""

    num_beams: int = 128
    """Beams per scan."""
    fov_deg: float = 360.0
    """Field of view in degrees, centred on x forward."""
    range_min: float = 0.12
    """Returns nearer than this are reported as -inf (REP 117)."""
    range_max: float = 3.5
    """No return within this range is reported as +inf (REP 117)."""
    noise_std: float = 0.01
    """Gaussian range noise (m)."""
    dropout: float = 0.01
    """Probability that a beam is invalid (NaN, REP 117)."""
    skew: float = 0.0
    """Fraction of the control period one sweep takes: beams sample the pose along the tick (motion skew)."""


@dataclass(frozen=True)
class OdometryConfig:
    """Wheel odometry errors: the policy never sees the true pose.

    The nominal values describe calibrated wheels with a gyro-aided heading. The goal is given in the odometry
    frame and success is judged on the true pose, so odometry error caps any navigator: with 0.01 rad/m of
    heading drift and 2 % scale error, the pose error at arrival has a median of 0.8 m and no odometry-only
    navigator reaches 90 % within the 0.3 m goal radius (the classical baseline without its scan matcher: 52 %).
    With these values the median is 0.08 m (94 % under 0.3 m). Randomization multiplies them by 0.5 to 2.
    """

    scale_std: float = 0.005
    """Per-episode wheel-scale error (fraction of distance), drawn once per episode."""
    trans_noise: float = 0.005
    """Per-tick translation noise, as a fraction of the distance moved that tick."""
    rot_noise: float = 0.005
    """Per-tick rotation noise, as a fraction of the angle turned that tick."""
    heading_drift_std: float = 0.0005
    """Per-episode heading drift (rad per metre driven), drawn once per episode."""


@dataclass(frozen=True)
class RandomizationConfig:
    """Per-episode domain randomization (sim-to-real). Off by default: eval and HIL run the nominal robot."""

    enabled: bool = False
    """Master switch."""
    beams: tuple[int, int] = (90, 180)
    """Beam count range."""
    fov_deg: tuple[float, float] = (240.0, 360.0)
    """Field-of-view range (degrees); values within 1 degree of 360 snap to a full circle."""
    noise_std: tuple[float, float] = (0.0, 0.03)
    """Range-noise standard deviation (m)."""
    dropout: tuple[float, float] = (0.0, 0.08)
    """NaN dropout probability."""
    odom_scale: tuple[float, float] = (0.5, 2.0)
    """Multiplier on every odometry error of OdometryConfig."""
    drift_scale: tuple[float, float] = (1.0, 1.0)
    """Further multiplier on the per-episode wheel-scale error and heading drift only (uncalibrated bases; e.g.
    [1, 20] reaches the ``odom-harsh`` condition's 2 % and 0.01 rad/m); [1, 1] draws nothing."""
    radius: tuple[float, float] = (0.15, 0.21)
    """Robot radius (m)."""
    wheel_friction: tuple[float, float] = (0.5, 1.2)
    """Traction coefficient."""
    latency_ticks: tuple[int, int] = (0, 2)
    """Whole control ticks between a command and its effect."""
    period_jitter: float = 0.1
    """Std of the per-tick stretch of the control period (fraction; clipped to +-3 std)."""
    skew: tuple[float, float] = (0.0, 1.0)
    """Scan motion-skew range (fraction of the period one sweep takes)."""


@dataclass(frozen=True)
class RewardConfig:
    """Reward terms, summed per control tick."""

    progress: float = 1.0
    """Per metre of progress along the geodesic (shortest-path) distance to the goal."""
    success: float = 10.0
    """Bonus on reaching the goal radius."""
    collision: float = -0.2
    """Per tick in contact with a wall."""
    time: float = -0.01
    """Per tick."""
    blocked: float = 0.0
    """Per tick, times the share of the commanded speed the safety layer's obstacle rule took away
    (|v| / v_max * (1 - obstacle factor)): prices driving into a wall the safety layer stops. 0 for PPO's recipe;
    launch/train_q.yaml sets it, since a greedy Q policy otherwise settles on a blocked primitive forever."""
    turn_change: float = 0.0
    """Per tick, times |omega - previous omega| / omega_max of the commands the safety layer passed: prices swinging
    the heading back and forth (a left-to-right reversal in place at 1.5 rad/s counts 1.5). 0 for PPO's recipe;
    launch/train_q.yaml sets it, since a greedy Q policy dithered between turning left and right in place, where
    the two are worth nearly the same."""


@dataclass(frozen=True)
class MazeConfig:
    """Where mazes come from when the env is not given one: the procedural generator."""

    families: tuple[str, ...] = ("perfect", "wilson", "braided", "rooms", "halls", "deadends")
    """Generator families to draw from, uniformly."""
    width: tuple[int, int] = (7, 7)
    """Passage cells along x (inclusive range)."""
    height: tuple[int, int] | None = None
    """Passage cells along y (inclusive range); None: square mazes."""
    split: str = "train"
    """Seed split: train, val or test (disjoint seed ranges)."""
    cell: float = 1.0
    """Metres per grid cell."""
    cell_range: tuple[float, float] | None = None
    """Metres per grid cell drawn uniformly per generated maze from [lo, hi] (None: always ``cell``). Corridor
    width and wall thickness scale with it: a policy trained on one cell size meets narrower aisles (the 0.8 m
    warehouse) only at test time otherwise."""
    corner_to_corner: bool = False
    """Start and goal in opposite corners instead of random (at least half the geodesic diameter apart)."""
    episodes_per_maze: int = 1
    """Episodes on one generated maze before a new one is drawn (start and goal redrawn each time)."""

    def __post_init__(self) -> None:
        r = self.cell_range
        if r is not None and not (len(r) == 2 and 0.0 < r[0] <= r[1] < float("inf")):
            raise ValueError(f"sim.maze.cell_range must be [lo, hi] metres with 0 < lo <= hi, got {r!r}: "
                             "give e.g. [0.8, 1.2], or null for a fixed sim.maze.cell")


DYNAMIC_DENSITY = 4.0 / 97.0
"""Movers per square metre of free area in the ``dynamic`` condition: 4 movers in a 7x7 perfect maze at 1 m
cells, whose (2*7+1)^2 grid has 97 free cells (97 m^2), so 0.0412 per m^2; roomier families get more."""


def _range_ok(r: tuple[float, float]) -> bool:
    return len(r) == 2 and 0.0 <= r[0] <= r[1] < float("inf")


@dataclass(frozen=True)
class DynamicConfig:
    """Moving obstacles: people-sized cylinders walking the maze's free cells (robonav.sim.dynamic)."""

    density: float = 0.0
    """Movers per square metre of free area (0: none). The ``dynamic`` condition sets DYNAMIC_DENSITY (4/97,
    4 movers per 7x7 maze at 1 m cells); a fractional count is rounded up or down at random per episode."""
    density_max: float | None = None
    """With a value above ``density``, each episode's density is drawn uniformly from [density, density_max]
    (training across crowd levels, from empty mazes up), and a maze with too little room far enough from the
    start and goal gets as many as fit instead of a refusal; null: always ``density``, refused when it cannot be
    placed."""
    radius: tuple[float, float] = (0.2, 0.3)
    """Radius range (m), drawn per mover (rounded to 1 cm)."""
    speed: tuple[float, float] = (0.3, 1.0)
    """Walking speed range (m/s), drawn per mover; the robot's v_max is 0.5."""
    oblivious_fraction: float = 0.5
    """Share of movers that ignore the robot until they bump into it; the rest (polite) stop at stop_distance.
    Each mover's kind is drawn per episode, so the mix varies by episode."""
    pause: tuple[float, float] = (0.5, 3.0)
    """Pause length range (s) at a waypoint."""
    pause_prob: float = 0.2
    """Probability of pausing at each waypoint (cell centre) reached."""
    block: tuple[float, float] = (5.0, 15.0)
    """Range (s) of a long stop in a corridor cell (two free neighbours): the mover blocks the corridor."""
    block_prob: float = 0.05
    """Probability of a long stop at each corridor cell reached."""
    stop_distance: float = 0.6
    """A polite mover stops while the gap between its body and the robot's, ahead of it, is below this (m)."""
    give_way: float = 3.0
    """A mover held up by the robot this long (s) in all, on its way between two waypoints, turns back."""
    spawn_clearance: float = 2.0
    """No mover starts with its centre nearer than this (m) to the robot's start or the goal."""
    max_movers: int = 32
    """Most movers in one maze; a density asking for more is refused."""
    height: float = 1.7
    """Cylinder height (m)."""

    @property
    def peak_density(self) -> float:
        """The highest density an episode can have (0: no movers ever)."""
        return max(self.density, self.density_max or 0.0)

    def __post_init__(self) -> None:
        for name in ("radius", "speed", "pause", "block"):
            r = getattr(self, name)
            if not _range_ok(r):
                raise ValueError(f"sim.dynamic.{name} must be [lo, hi] with 0 <= lo <= hi, got {list(r)!r}")
        if self.radius[0] <= 0:
            raise ValueError(f"sim.dynamic.radius must be above 0 m, got {list(self.radius)!r}: give e.g. [0.2, 0.3]")
        checks = (("density", self.density >= 0, "a number >= 0 (0: no movers)"),
                  ("density_max", self.density_max is None or self.density_max >= self.density,
                   "null or a number >= sim.dynamic.density"),
                  ("oblivious_fraction", 0 <= self.oblivious_fraction <= 1, "a number in [0, 1]"),
                  ("pause_prob", 0 <= self.pause_prob <= 1, "a number in [0, 1]"),
                  ("block_prob", 0 <= self.block_prob <= 1, "a number in [0, 1]"),
                  ("stop_distance", self.stop_distance >= 0, "a number >= 0"),
                  ("give_way", self.give_way > 0, "a number > 0"),
                  ("spawn_clearance", self.spawn_clearance >= 0, "a number >= 0"),
                  ("max_movers", isinstance(self.max_movers, int) and 0 <= self.max_movers <= 256,
                   "an integer in [0, 256]"),
                  ("height", self.height > 0, "a number > 0"))
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"sim.dynamic.{name} must be {expected}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator needs; the `sim:` section of a launch file."""

    period: float = 0.1
    """Control period (s)."""
    substeps: int = 5
    """Physics substeps per control tick."""
    goal_radius: float = 0.3
    """Success when the robot centre is this close to the goal (m)."""
    time_limit_factor: float = 3.0
    """Time limit = factor * shortest path / v_max + time_limit_extra (docs/design.md)."""
    time_limit_extra: float = 10.0
    """Seconds added to the time limit."""
    latency_ticks: int = 1
    """Nominal command latency in control ticks (docs/design.md: eval and HIL run one); randomization draws from its
    own range instead."""
    raycaster: str = "grid"
    """Range queries: 'grid' (exact Numba DDA on grid mazes) or 'pybullet' (rayTestBatch, any geometry)."""
    observation: str = "preprocessor"
    """Observation builder: 'preprocessor' (robonav.sensors: scan bins, odometry, obstacle and trajectory memory
    patches; the code that runs on the robot) or 'plain' (scan bins + goal + command, no memory)."""
    slot_size: float = 64.0
    """Spacing (m) of maze slots in one physics world; a maze must fit inside."""
    robot: RobotConfig = field(default_factory=RobotConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    odometry: OdometryConfig = field(default_factory=OdometryConfig)
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    maze: MazeConfig = field(default_factory=MazeConfig)
    preprocessor: PreprocessorConfig = field(default_factory=PreprocessorConfig)
    """Sensor preprocessing settings (observation: preprocessor); switch memory channels off here for ablations."""
    dynamic: DynamicConfig = field(default_factory=DynamicConfig)
    """Moving obstacles (off by default: density 0)."""

    def __post_init__(self) -> None:
        if self.raycaster not in ("grid", "pybullet"):
            raise ValueError(f"sim.raycaster must be 'grid' or 'pybullet', got {self.raycaster!r}")
        if self.observation not in ("plain", "preprocessor"):
            raise ValueError(f"sim.observation must be 'plain' or 'preprocessor', got {self.observation!r}")
        if self.period <= 0 or self.substeps < 1:
            raise ValueError(f"sim.period must be > 0 and sim.substeps >= 1, got {self.period}, {self.substeps}")
