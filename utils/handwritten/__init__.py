"""handwritten"""
