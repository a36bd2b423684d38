CREATE INDEX ref_cascades_by_target ON ref_cascades (backend, target_type)
