"""Unit conversions. GROMACS writes nm and kJ/mol; everything after mapping is
Angstrom, kcal/mol, kcal/mol/Angstrom, amu and fs (LAMMPS ``units real``)."""

KJ_PER_KCAL = 4.184
ANGSTROM_PER_NM = 10.0

#: kJ/mol/nm (GROMACS force) -> kcal/mol/Angstrom
KJ_MOL_NM_TO_KCAL_MOL_A = 1.0 / (KJ_PER_KCAL * ANGSTROM_PER_NM)
#: kJ/mol/Angstrom (MDAnalysis' internal force unit) -> kcal/mol/Angstrom
KJ_MOL_A_TO_KCAL_MOL_A = 1.0 / KJ_PER_KCAL

DATASET_UNITS = {
    "length": "angstrom",
    "force": "kcal/mol/angstrom",
    "energy": "kcal/mol",
    "mass": "amu",
    "time": "ps",
}
