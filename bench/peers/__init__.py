"""Peer libraries doing MedFlow's benchmark work, for comparison (`python -m bench.peers`)."""
