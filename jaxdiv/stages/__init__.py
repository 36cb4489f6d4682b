"""Stages: each reads a store or a folder, runs analysis kernels and publishes one folder."""
