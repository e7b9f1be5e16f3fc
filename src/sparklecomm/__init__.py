"""SparkleComm: an open-source contact-center and unified-communications platform."""

__version__ = "0.1.0"
