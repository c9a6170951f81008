"""Loopback fakes of vendor APIs for connector tests: `server.LoopbackServer` serves any of them."""
