"""distillcaps.serving"""
