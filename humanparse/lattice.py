"""``humanparse.lattice`` (DESIGN.md §5): the permutohedral lattice lives in
:mod:`humanparse.modeling.lattice`; this name stays for the programs that import it."""

from .modeling.lattice import LatticeStack, PermutohedralLattice, permutohedral_filter

__all__ = ["LatticeStack", "PermutohedralLattice", "permutohedral_filter"]
