"""distillcaps.retrieval"""
