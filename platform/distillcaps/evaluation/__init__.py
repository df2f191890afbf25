"""distillcaps.evaluation"""
