"""distillcaps.data"""
