"""humanparse: holistic, instance-level human parsing (Li, Arnab & Torr, BMVC 2017).

Every pixel gets a body-part label and the identity of the person it belongs to.
"""

__version__ = "0.1.0"
