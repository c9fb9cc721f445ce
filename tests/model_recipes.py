"""A tiny training recipe (plain data, as a YAML file would hold it) for the engine tests."""


TINY_MODEL = {
    "min_size": [160], "max_size": 256,
    "backbone": {"depth": 18, "width": 0.25, "norm": "gn", "trainable_stages": 5, "fpn_channels": 16},
    "rpn": {"anchor_sizes": [8, 16, 32, 64, 128], "pre_nms_top_n_train": 200, "post_nms_top_n_train": 100,
            "pre_nms_top_n_test": 150, "post_nms_top_n_test": 60, "batch_size_per_image": 64},
    "box": {"representation_size": 32, "batch_size_per_image": 48},
    "mask": {"pool_size": 7, "conv_layers": 2, "channels": 8},
}


def tiny_recipe(data_root, **sections) -> dict:
    recipe = {
        "model": TINY_MODEL,
        "data": {"root": str(data_root), "split": "synthetic"},
        "solver": {"base_lr": 0.02, "reference_batch_size": 2, "iterations": 6, "steps": [],
                   "warmup_iterations": 2},
        "train": {"log_period": 1, "checkpoint_period": 3, "threads": 1},
    }
    for name, values in sections.items():
        recipe[name] = {**recipe.get(name, {}), **values}
    return recipe
