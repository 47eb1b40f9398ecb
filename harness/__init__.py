"""Test harness for Deepgram-Voice-Agent-to-OpenAI-Realtime proxies.

Everything a test needs is a fixture or a marker of the pytest plugin
(`harness.pytest_plugin`, loaded automatically once the package is installed).
"""
