"""pipeline: templated bulk Persian SMS through AmootSMS SendPeerToPeer."""

__version__ = "0.1.0"
