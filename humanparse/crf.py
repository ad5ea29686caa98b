"""``humanparse.crf`` (DESIGN.md §5): the Instance CRF lives in :mod:`humanparse.modeling.crf`;
this name stays for the programs that import it."""

from .modeling.crf import InstanceCRF

__all__ = ["InstanceCRF"]
