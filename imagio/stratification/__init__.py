"""Before the needle: lung nodule malignancy risk (Brock, Mayo), Lung-RADS v2022, guideline
suggestions, and ablation eligibility of liver lesions. Suggestions, never decisions."""
