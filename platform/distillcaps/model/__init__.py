"""distillcaps.model"""
