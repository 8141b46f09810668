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

# --- realistic phantom: contrast phases, extra tissues, correlated noise -----------------------
# Enhancement per phase (HU) after Bae KT, Radiology 2010;256:32-61 (aortic peak 250-350 HU in
# the arterial phase; portal-venous phase liver 100-130 HU, portal vein 150-200 HU) and
# Kalra MK et al. / Lamba R et al. AJR 2014 (unenhanced organs); myocardium enhances to about
# 100-120 HU, far less than the blood pool (cardiac CT: Nieman K et al., Radiology 2006).
PHASES = ("native", "arterial", "portal_venous")
PHASE_HU = {
    "native": {"blood_left": 40, "blood_right": 40, "myocardium": 40, "aorta": 40, "pulmonary_artery": 40,
               "pulmonary_vein": 40, "vein": 40, "inferior_vena_cava": 40, "portal_vein": 40, "hepatic_vein": 40,
               "lung_arteries": 40, "lung_vessels": 40, "liver": 60, "spleen": 48, "kidney": 32, "pancreas": 42,
               "liver_tumor": 35},
    "arterial": {"blood_left": 320, "blood_right": 260, "myocardium": 110, "aorta": 330, "pulmonary_artery": 280,
                 "pulmonary_vein": 310, "vein": 280, "inferior_vena_cava": 90, "portal_vein": 120, "hepatic_vein": 60,
                 "lung_arteries": 270, "lung_vessels": 300, "liver": 75, "spleen": 125, "kidney": 190, "pancreas": 115,
                 "liver_tumor": 50},
    "portal_venous": {"blood_left": 160, "blood_right": 150, "myocardium": 105, "aorta": 170, "pulmonary_artery": 155,
                      "pulmonary_vein": 165, "vein": 150, "inferior_vena_cava": 140, "portal_vein": 180,
                      "hepatic_vein": 160, "lung_arteries": 155, "lung_vessels": 165, "liver": 115, "spleen": 120,
                      "kidney": 170, "pancreas": 100, "liver_tumor": 55},
}
HU.update({"pancreas": 100.0, "duodenum": 35.0, "small_bowel": 30.0, "colon": 20.0, "bowel_gas": -1000.0,
           "fat_visceral": -90.0})
# in-plane noise power spectrum of filtered back-projection: ramp x apodisation window, peak
# near 0.25-0.35 cycles/mm for a standard kernel (Boedeker KL, McNitt-Gray MF, Phys Med Biol
# 2007;52:4027-4046; Solomon J, Samei E, Med Phys 2012)
NPS_PEAK_PER_MM = 0.3
