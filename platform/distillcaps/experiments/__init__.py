"""distillcaps.experiments"""
