"""The vocabulary every layer shares: channels, statuses and their machine, reasons, queues and
lanes, id formats, the clock, phone numbers, segments and retry timing.

It imports nothing of Switchboard's, so models, providers, the CRM and messaging all stand on it
(an import-linter contract holds it there)."""
