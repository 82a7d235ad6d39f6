"""The published numbers of Johnson, Alahi & Fei-Fei, *Perceptual Losses for Real-Time Style
Transfer and Super-Resolution* (ECCV 2016) that rtstyle measures itself against."""

# Table 1: seconds on a GTX Titan X (Torch7, cuDNN), and the speedups as printed (computed by the
# authors from unrounded times, so they differ slightly from the rounded seconds' ratios).
TABLE1_DEVICE = "NVIDIA GTX Titan X (Johnson et al. 2016, Table 1)"
TABLE1 = {
    256: {"gatys": {100: 3.17, 300: 9.52, 500: 15.86}, "ours": 0.015, "speedup": {100: 212, 300: 636, 500: 1060}},
    512: {"gatys": {100: 10.97, 300: 32.91, 500: 54.85}, "ours": 0.05, "speedup": {100: 205, 300: 615, 500: 1026}},
    1024: {"gatys": {100: 42.89, 300: 128.66, 500: 214.44}, "ours": 0.21, "speedup": {100: 208, 300: 625, 500: 1042}},
}

# Section 4.2: (PSNR dB, SSIM) on Set5. Keyed by our recipe's ``loss`` ("pixel" / "feat");
# "srcnn" is Dong et al.'s model, for reference.
SR = {
    4: {"Set5": {"bicubic": (28.43, 0.8114), "pixel": (28.40, 0.8205), "srcnn": (30.48, 0.8628),
                 "feat": (27.09, 0.7680)}},
    8: {"Set5": {"bicubic": (23.80, 0.6455), "pixel": (24.77, 0.6864), "feat": (23.26, 0.7058)}},
}
SR_LABELS = {"bicubic": "bicubic", "pixel": "l_pixel", "srcnn": "SRCNN", "feat": "l_feat"}
