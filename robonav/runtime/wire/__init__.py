"""robonav.runtime.wire: the robot wire (UDP datagrams, docs/design.md "Robot wire").

What it is for: the byte layouts and signing (``protocol``), the robot's key (``keys``), the receive state
(``receiver``), the loop's robot over UDP (``udp_driver``), recordings (``recording``), a HIL run's truth beside
them (``truth``) and their replay through the loop (``replay``). It may import numpy, robonav.sensors,
robonav.control and the loop; ``robonav.hil`` and tools use it only by the names exported here.
"""

from robonav.runtime.wire.keys import (
    ENV_KEY,
    ENV_KEY_FILE,
    WireKeyError,
    load_key,
    read_key_file,
    write_key_file,
)
from robonav.runtime.wire.protocol import *  # noqa: F403  (the protocol's names are the wire's names)
from robonav.runtime.wire.protocol import __all__ as _protocol_names
from robonav.runtime.wire.receiver import DescriptionCache, RateLimiter, Reassembler, Receiver
from robonav.runtime.wire.recording import LogRecord, WireLogError, WireRecorder, read_log
from robonav.runtime.wire.replay import format_replay, frames_and_commands, replay
from robonav.runtime.wire.truth import TRUTH_NAME, Truth, TruthError, TruthRecorder, load_truth
from robonav.runtime.wire.udp_driver import UdpDriver, UdpDriverConfigError, is_loopback, parse_address

__all__ = [
    *_protocol_names, "ENV_KEY", "ENV_KEY_FILE", "TRUTH_NAME", "DescriptionCache", "LogRecord", "RateLimiter",
    "Reassembler", "Receiver", "Truth", "TruthError", "TruthRecorder", "UdpDriver", "UdpDriverConfigError",
    "WireKeyError", "WireLogError", "WireRecorder", "format_replay", "frames_and_commands", "is_loopback", "load_key",
    "load_truth", "parse_address", "read_key_file", "read_log", "replay", "write_key_file",
]
