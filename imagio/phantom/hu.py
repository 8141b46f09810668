"""CT numbers (HU) of the phantom's tissues, contrast-enhanced portal-venous phase.

Typical values, within the ranges reported by:
- Lamba R et al. CT Hounsfield numbers of soft tissues on unenhanced abdominal CT scans.
  AJR 2014;203:1013-1020 (fat, muscle, unenhanced organs);
- Bae KT. Intravenous contrast medium administration and scan timing at CT: considerations and
  approaches. Radiology 2010;256:32-61 (portal-venous phase: liver ~100-130 HU, portal vein
  ~150-200 HU, aorta ~150-200 HU);
- Gevenois PA et al. Comparison of computed density and microscopic morphometry in pulmonary
  emphysema. AJRCCM 1996;154:187-192 (normal lung ~ -850 HU, emphysema below -950 HU);
- Fleischner Society glossary (Hansell DM et al., Radiology 2008;246:697-722): ground-glass
  opacity is hazy increased attenuation with preserved vessels (~ -700 to -300 HU).

``HU_RANGE`` gives the accepted median range per structure that the tests check.
"""

HU = {
    "air": -1000.0,
    "table": 150.0,
    "skin": 40.0,
    "subcutaneous_fat": -100.0,
    "muscle": 50.0,
    "diaphragm": 50.0,
    "body": -40.0,  # mediastinal / retroperitoneal fat mixed with bowel: soft tissue-fat mix
    "bone_cortical": 900.0,
    "bone_trabecular": 250.0,
    "costal_cartilages": 120.0,
    "spinal_cord": 35.0,
    "lung": -850.0,
    "fissure": -700.0,
    "airway_lumen": -1000.0,
    "airway_wall": 40.0,
    "lung_vessels": 160.0,
    "heart": 150.0,
    "aorta": 170.0,
    "inferior_vena_cava": 140.0,
    "portal_vein_and_splenic_vein": 180.0,
    "portal_vein": 180.0,
    "hepatic_vein": 160.0,
    "liver": 115.0,
    "gallbladder": 10.0,
    "kidney": 170.0,
    "spleen": 120.0,
    "stomach": 30.0,
    "stomach_gas": -1000.0,
    "esophagus": 40.0,
    "liver_tumor": 55.0,
    "nodule_solid": 30.0,
    "nodule_ground_glass": -600.0,
}

# accepted median HU per label of the generated CT (after blur and noise), for the tests
HU_RANGE = {
    "subcutaneous_fat": (-130, -70), "muscle": (30, 70), "liver": (95, 135), "spleen": (100, 140),
    "kidney_left": (140, 200), "kidney_right": (140, 200), "aorta": (140, 200),
    "portal_vein_and_splenic_vein": (140, 210), "inferior_vena_cava": (110, 170), "heart": (120, 180),
    "gallbladder": (-10, 30), "trachea": (-1000, -900), "spinal_cord": (15, 55),
    "lung_upper_lobe_left": (-900, -800), "lung_lower_lobe_right": (-900, -800),
    "vertebrae_T8": (200, 1000), "rib_right_7": (200, 1000),
}

NOISE_SD = 12.0  # HU, typical of a standard-dose abdominal CT (quantum noise ~10-15 HU)
BLUR_SIGMA_MM = 0.9  # Gaussian point-spread (sigma, mm) modelling partial-volume blur
