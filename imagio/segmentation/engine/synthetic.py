"""Tiny nnU-Net v2 model folders with random weights, and synthetic CTs, for tests and benchmarks.

The folder has the layout and keys nnU-Net 2.x writes (plans.json, dataset.json,
fold_N/checkpoint_final.pth with numpy scalars in ``logging``), so nnU-Net's own predictor can run
it too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...volume import Volume, make_ijk_to_ras


def plans_dict(patch_size=(32, 32, 32), spacing=(2.0, 1.5, 1.5), features=(8, 16, 32),
               resenc: bool = False, transpose_forward=(0, 1, 2), old_format: bool = False) -> dict:
    n = len(features)
    strides = [[1, 1, 1]] + [[2, 2, 2]] * (n - 1)
    kernels = [[3, 3, 3]] * n
    if resenc:
        arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
                "arch_kwargs": {"n_stages": n, "features_per_stage": list(features),
                                "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": kernels,
                                "strides": strides, "n_blocks_per_stage": [1] + [2] * (n - 1),
                                "n_conv_per_stage_decoder": [1] * (n - 1), "conv_bias": True,
                                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                                "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                                "nonlin_kwargs": {"inplace": True}},
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    else:
        arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {"n_stages": n, "features_per_stage": list(features),
                                "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": kernels,
                                "strides": strides, "n_conv_per_stage": [2] * n,
                                "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
                                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                                "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                                "nonlin_kwargs": {"inplace": True}},
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    conf = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2, "patch_size": list(patch_size), "median_image_size_in_voxels": [64, 64, 64],
        "spacing": list(spacing), "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
        "architecture": arch, "batch_dice": False,
    }
    if old_format:
        del conf["architecture"]
        conf.update({"UNet_class_name": "PlainConvUNet", "UNet_base_num_features": features[0],
                     "unet_max_num_features": features[-1], "n_conv_per_stage_encoder": [2] * n,
                     "n_conv_per_stage_decoder": [2] * (n - 1), "num_pool_per_axis": [n - 1] * 3,
                     "pool_op_kernel_sizes": strides, "conv_kernel_sizes": kernels})
    tb = [int(i) for i in np.argsort(transpose_forward)]
    return {
        "dataset_name": "Dataset999_Tiny", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": list(spacing), "original_median_shape_after_transp": [64, 64, 64],
        "image_reader_writer": "SimpleITKIO", "transpose_forward": list(transpose_forward), "transpose_backward": tb,
        "configurations": {"3d_fullres": conf}, "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 1500.0, "mean": 60.0, "median": 55.0, "min": -1000.0, "percentile_00_5": -900.0,
            "percentile_99_5": 800.0, "std": 180.0}},
    }


def make_model_folder(out: Path, labels=("background", "liver", "lung_vessels", "airways"), folds=(0,),
                      seed: int = 0, mirror_axes=(0, 1, 2), **plan_kwargs) -> Path:
    """Write a random-weight model folder (the weights are nnU-Net's He init, then perturbed so
    the output is not trivially one class). Returns the folder."""
    import torch

    from .model_folder import convert_old_architecture
    from .network import build_network

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plans = plans_dict(**plan_kwargs)
    dataset = {"channel_names": {"0": "CT"}, "labels": {n: i for i, n in enumerate(labels)},
               "numTraining": 1, "file_ending": ".nii.gz"}
    (out / "plans.json").write_text(json.dumps(plans, indent=1), encoding="utf-8")
    (out / "dataset.json").write_text(json.dumps(dataset, indent=1), encoding="utf-8")
    conf = convert_old_architecture(plans["configurations"]["3d_fullres"])
    for k, fold in enumerate(folds):
        torch.manual_seed(seed + k)
        net = build_network(conf, 1, len(labels))
        with torch.no_grad():
            for name, p in net.named_parameters():
                if name.endswith("bias"):
                    p.add_(0.1 * torch.randn_like(p))
        ckpt = {
            "network_weights": net.state_dict(),
            "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.99, "params": [0]}]},
            "grad_scaler_state": None,
            "logging": {"mean_fg_dice": [np.float64(0.5), np.float64(0.61)], "ema_fg_dice": [np.float32(0.55)],
                        "dice_per_class_or_region": [[np.float64(0.4), np.float64(0.7)]],
                        "train_losses": [np.float64(-0.3)], "epoch_start_timestamps": [1700000000.0],
                        "lrs": [0.01]},
            "_best_ema": np.float64(0.6),
            "current_epoch": 1000,
            "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": fold, "dataset_json": dataset,
                          "device": torch.device("cpu")},
            "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": tuple(mirror_axes) if mirror_axes else None,
        }
        if not mirror_axes:
            del ckpt["inference_allowed_mirroring_axes"]
        (out / f"fold_{fold}").mkdir(exist_ok=True)
        torch.save(ckpt, out / f"fold_{fold}" / "checkpoint_final.pth")
    return out


def synthetic_ct(shape_kji=(40, 56, 48), spacing=(1.1, 0.9, 2.5), seed: int = 0, ijk_to_ras=None,
                 zero_border: int = 2) -> Volume:
    """A body-like CT (HU): soft-tissue ellipsoid with a dense organ, air pockets and noise,
    surrounded by air; the outer ``zero_border`` slices along k are exactly 0 (out of field),
    to exercise the crop. ``spacing`` is (i, j, k) mm."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape_kji], indexing="ij")
    ct = np.full(shape_kji, -1000.0)
    body = (i / 0.85) ** 2 + (j / 0.7) ** 2 < 1
    ct[body] = 40
    ct[((i - 0.3) / 0.35) ** 2 + ((j + 0.1) / 0.3) ** 2 + ((k - 0.1) / 0.5) ** 2 < 1] = 110
    ct[((i + 0.4) / 0.3) ** 2 + (j / 0.35) ** 2 + (k / 0.9) ** 2 < 1] = -850
    ct += rng.normal(0, 25, shape_kji)
    ct = ct.astype(np.int16)
    if zero_border:
        ct[:zero_border] = 0
        ct[-zero_border:] = 0
    affine = make_ijk_to_ras(spacing) if ijk_to_ras is None else ijk_to_ras
    return Volume(ct, affine, "synthetic CT")
