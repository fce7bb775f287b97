"""How a message reaches the appellant: one adapter per channel, all behind :class:`Channel`."""

from services.notifications.channels.base import (
    Channel,
    ChannelFailure,
    PermanentFailure,
    TransientFailure,
)
from services.notifications.channels.directory import ChannelDirectory, channel_plan
from services.notifications.channels.email import EmailChannel, SmtpServer, compose_email
from services.notifications.channels.platforms import (
    FacebookInApp,
    HorizonHeadset,
    HttpProvider,
    InstagramDirect,
    Provider,
    RecordingSink,
    WhatsAppTemplate,
)
from services.notifications.channels.webhook import WebhookChannel

__all__ = [
    "Channel",
    "ChannelDirectory",
    "ChannelFailure",
    "EmailChannel",
    "FacebookInApp",
    "HorizonHeadset",
    "HttpProvider",
    "InstagramDirect",
    "PermanentFailure",
    "Provider",
    "RecordingSink",
    "SmtpServer",
    "TransientFailure",
    "WebhookChannel",
    "WhatsAppTemplate",
    "channel_plan",
    "compose_email",
]
