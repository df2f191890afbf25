"""distillcaps.training"""
