"""outdial: an event-driven outbound dialer daemon for contact-center platforms."""

__version__ = "0.1.0"
