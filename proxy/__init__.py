"""A Deepgram Voice Agent protocol proxy in front of the OpenAI Realtime API (GA).

`python -m proxy` runs it; `proxy.server.serve_proxy` embeds it; the translation core
(`proxy.session.ProxySession`) is usable without any socket.
"""
