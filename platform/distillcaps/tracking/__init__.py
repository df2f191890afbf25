"""distillcaps.tracking"""
