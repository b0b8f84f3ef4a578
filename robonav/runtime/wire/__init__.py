"""robonav.runtime.wire: the robot wire (UDP datagrams, docs/design.md "Robot wire").

What it is for: the byte layouts (``protocol``), the receive state (``receiver``), the loop's robot over UDP
(``udp_driver``), recordings (``recording``) and their replay through the loop (``replay``). It may import numpy,
robonav.sensors, robonav.control and the loop; ``robonav.hil`` and tools use it only by the names exported here.
"""

from robonav.runtime.wire.protocol import *  # noqa: F403  (the protocol's names are the wire's names)
from robonav.runtime.wire.protocol import __all__ as _protocol_names
from robonav.runtime.wire.receiver import Reassembler, Receiver
from robonav.runtime.wire.recording import LogRecord, WireLogError, WireRecorder, read_log
from robonav.runtime.wire.replay import format_replay, frames_and_commands, replay
from robonav.runtime.wire.udp_driver import UdpDriver, UdpDriverConfigError, is_loopback, parse_address

__all__ = [
    *_protocol_names, "LogRecord", "Reassembler", "Receiver", "UdpDriver", "UdpDriverConfigError", "WireLogError",
    "WireRecorder", "format_replay", "frames_and_commands", "is_loopback", "parse_address", "read_log", "replay",
]
