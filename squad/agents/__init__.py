"""Agents: the tool-use loop (`loop`), the jailed tools (`tools`), the shared context pack (`context`) and
the prompts (`prompts`, package data)."""
