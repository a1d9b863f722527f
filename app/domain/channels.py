"""Channels: the one type every layer uses for rcs, mms and sms."""

from __future__ import annotations

from typing import Literal, get_args

Channel = Literal["rcs", "mms", "sms"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)
