"""The CLIPCAM FiftyOne plugin: operators for the App's operator browser (install: see plugin_install.py).

FiftyOne loads this file from the plugins directory as a module of its own, so it imports the package
absolutely; the work itself lives in :mod:`clipcam_utils.fiftyone_app` (these operators only build the
forms and report progress).

- ``@clipcam/clipcam/localize_with_clipcam``: a text (or one query per label of a ground-truth field) on
  the dataset, the current view or the selected samples -> a Detections field and a Heatmap field.
- ``@clipcam/clipcam/evaluate_against_ground_truth``: ``evaluate_detections`` plus per-sample IoU.
- ``@clipcam/clipcam/clipcam_map_panel``: a modal panel that shows the map of a typed text on the open
  sample; the image's target-layer capture is cached, so each new text needs no new forward pass.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from clipcam_utils.fiftyone_app import (
    DEFAULT_TEMPLATE,
    LocalizeRequest,
    RequestError,
    cached_clip,
    default_heatmap_dir,
    detection_fields,
    evaluate_view,
    localize_view,
    map_preview,
    method_label,
    method_names,
    method_problem,
    model_names,
    sample_iou_key,
)
from clipcam_utils.fiftyone_export import GROUND_TRUTH_FIELD, PREDICTION_PREFIX

PLUGIN_NAME = "@clipcam/clipcam"
TEXT, LABELS = "text", "labels"
# Targets above this many samples are offered as delegated operations by default (run them with
# `fiftyone delegated launch`); smaller ones run at once with progress in the App.
DELEGATE_DEFAULT_ABOVE = 200


def _request(params: dict) -> LocalizeRequest:
    by_labels = params.get("queries") == LABELS
    return LocalizeRequest(
        model=(params.get("model") or "shapes-rn").strip(),
        cam=params.get("method") or "gradcam",
        text=None if by_labels else params.get("text"),
        gt_field=params.get("gt_field") if by_labels else None,
        template=params.get("template") or DEFAULT_TEMPLATE,
        beta=params.get("beta"),
        field=(params.get("field") or "").strip() or None,
        overwrite=bool(params.get("overwrite")),
    )


def _problem(request: LocalizeRequest, target) -> RequestError | None:
    """Why the request cannot run on the target as it stands (None: it can)."""
    try:
        request.validate(target)
    except RequestError as error:
        return error
    return method_problem(request.model, request.cam)


class LocalizeWithClipcam(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="localize_with_clipcam",
            label="Localize with CLIPCAM",
            description="Grad-CAM on CLIP: a heatmap and a box for a text on every target sample",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            risk_level=types.RiskLevel.LOW,
        )

    def resolve_execution_options(self, ctx):
        return foo.ExecutionOptions(
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=len(ctx.target_view()) > DELEGATE_DEFAULT_ABOVE,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Localize on",
                           dataset_description="Localize on every sample of the dataset")  # fmt: skip
        target = ctx.target_view()
        form = {}  # the inputs a refusal can point at
        modes = types.RadioGroup(orientation="horizontal")
        modes.add_choice(TEXT, label="A text")
        modes.add_choice(LABELS, label="One query per label of a ground-truth field")
        inputs.enum("queries", modes.values(), default=TEXT, label="Queries", view=modes)
        if ctx.params.get("queries", TEXT) == TEXT:
            form["text"] = inputs.str(
                "text", required=True, label="Text", description="What to localize, e.g. 'a red circle'"
            )
        else:
            fields = detection_fields(target)
            choices = types.Dropdown()
            for name in fields:
                choices.add_choice(name, label=name)
            default = GROUND_TRUTH_FIELD if GROUND_TRUTH_FIELD in fields else (fields[0] if fields else None)
            form["gt_field"] = inputs.enum("gt_field", fields, default=default, required=True,
                                           label="Ground-truth field", view=choices)  # fmt: skip
            form["template"] = inputs.str("template", default=DEFAULT_TEMPLATE, label="Prompt template",
                                          description="'{}' is replaced by each label")  # fmt: skip
        models = types.AutocompleteView()
        for name in model_names():
            models.add_choice(name, label=name)
        inputs.str("model", default="shapes-rn", label="Model", view=models,
                   description="shapes-rn / shapes-vit run offline; any open_clip name needs its weights")  # fmt: skip
        methods = types.Dropdown()
        for name in method_names():
            methods.add_choice(name, label=method_label(name))
        # A string with the registry's names as choices, not an enum: any spelling the package accepts
        # ("Grad-CAM++", "MaskCLIP") runs too, and an unknown one is refused with the valid names below.
        form["method"] = inputs.str("method", default="gradcam", label="Method", view=methods,
                                    description="Any saliency method of the package's registry")  # fmt: skip
        form["beta"] = inputs.float("beta", min=0.0, max=1.0, label="β (threshold)",
                                    description="Empty: the model's default (as in the paper)")  # fmt: skip
        request = _request(ctx.params)
        try:
            names = f"{request.prediction_field} (and {request.heatmap_field} for the heatmap)"
        except ValueError:  # an unknown method: the refusal below says so
            names = "clipcam_<model>_<method>"
        form["field"] = inputs.str("field", label="Prediction field", description=f"Empty: {names}")
        form["overwrite"] = inputs.bool("overwrite", default=False, label="Overwrite existing fields",
                                        description="Replace the fields' values on the target samples")  # fmt: skip
        inputs.str("heatmap_dir", default=str(default_heatmap_dir(target)), label="Heatmap folder",
                   description="Where the heatmap PNG files are written")  # fmt: skip
        if request.text or request.gt_field:
            problem = _problem(request, target)
            if problem is not None:
                # Marking the input invalid keeps the App's Execute button disabled until it is changed.
                shown = form.get(problem.param, form["overwrite"])
                shown.invalid = True
                shown.error_message = str(problem)
                inputs.view("problem", types.Error(label="Cannot run yet", description=str(problem)))
        if len(target) > DELEGATE_DEFAULT_ABOVE:
            inputs.view("delegate", types.Notice(label=f"{len(target)} samples: scheduling this as a "
                        "delegated operation is offered (run `fiftyone delegated launch` to execute it)"))  # fmt: skip
        return types.Property(inputs, view=types.View(label="Localize with CLIPCAM"))

    def execute(self, ctx):
        request = _request(ctx.params)
        target = ctx.target_view()
        folder = ctx.params.get("heatmap_dir") or default_heatmap_dir(target)
        written = 0
        for done, total, written in localize_view(target, request, folder):
            label = f"CLIPCAM: {done}/{total} samples, {written} boxes"
            if ctx.delegated:
                ctx.set_progress(progress=done / total, label=label)
            else:
                yield ctx.ops.set_progress(progress=done / total, label=label)
        if not ctx.delegated:
            yield ctx.ops.reload_dataset()
            shown = [
                f for f in ctx.active_fields if f not in (request.prediction_field, request.heatmap_field)
            ]
            yield ctx.ops.set_active_fields([*shown, request.prediction_field, request.heatmap_field])
            yield ctx.ops.notify(f"CLIPCAM wrote {written} boxes to {request.prediction_field} and heatmaps "
                                 f"to {request.heatmap_field}", variant="success")  # fmt: skip


class EvaluateAgainstGroundTruth(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="evaluate_against_ground_truth",
            label="Evaluate against ground truth",
            description="evaluate_detections between a prediction and a ground-truth field, with per-sample IoU",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            risk_level=types.RiskLevel.LOW,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Evaluate")
        fields = detection_fields(ctx.target_view())
        predicted = [f for f in fields if f.startswith(PREDICTION_PREFIX)] or fields
        for name, label, default in (
            ("pred_field", "Prediction field", predicted[0] if predicted else None),
            ("gt_field", "Ground-truth field", GROUND_TRUTH_FIELD if GROUND_TRUTH_FIELD in fields else None),
        ):
            choices = types.Dropdown()
            for field in fields:
                choices.add_choice(field, label=field)
            inputs.enum(name, fields, default=default, required=True, label=label, view=choices)
        pred = ctx.params.get("pred_field") or (predicted[0] if predicted else "")
        default_key = "eval_" + pred.removeprefix(PREDICTION_PREFIX)
        inputs.str("eval_key", default=default_key, label="Evaluation key",
                   description=f"Per-sample IoU goes to {sample_iou_key('<key>')}")  # fmt: skip
        inputs.float("iou", default=0.5, min=0.0, max=1.0, label="IoU threshold for a match")
        inputs.bool("overwrite", default=False, label="Overwrite an existing evaluation with this key")
        return types.Property(inputs, view=types.View(label="Evaluate against ground truth"))

    def execute(self, ctx):
        p = ctx.params
        summary = evaluate_view(ctx.target_view(), p["pred_field"], p["gt_field"], p.get("eval_key") or None,
                                iou=p.get("iou") or 0.5, overwrite=bool(p.get("overwrite")))  # fmt: skip
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return summary

    def resolve_output(self, ctx):
        outputs = types.Object()
        for name, label in (("iou_field", "Per-sample IoU field"), ("precision", "Precision"),
                            ("recall", "Recall"), ("mean_iou", "Mean box IoU"), ("tp", "True positives"),
                            ("fp", "False positives"), ("fn", "False negatives")):  # fmt: skip
            outputs.str(name, label=label) if name == "iou_field" else outputs.float(name, label=label)
        return types.Property(outputs, view=types.View(label="CLIPCAM evaluation"))


class ClipcamMapPanel(foo.Panel):
    """The sample open in the modal, with the CLIPCAM map and box of the text typed in the panel."""

    @property
    def config(self):
        return foo.PanelConfig(name="clipcam_map_panel", label="CLIPCAM map", surfaces="modal",
                               help_markdown="Type a text: its Grad-CAM map on CLIP (shapes-rn by default) "
                               "is drawn over the open sample, with its box.")  # fmt: skip

    def on_load(self, ctx):
        self._update(ctx)

    def on_change_current_sample(self, ctx):
        self._update(ctx)

    def on_change_query(self, ctx):
        self._update(ctx)

    def _update(self, ctx):
        text = (ctx.panel.state.text or "").strip()
        if not text or not ctx.current_sample:
            ctx.panel.set_data("map", None)
            ctx.panel.set_state("summary", "Type a text to see its map on the open sample.")
            return
        sample = ctx.dataset[ctx.current_sample]
        try:
            clip = cached_clip(ctx.panel.state.model or "shapes-rn")
            preview = map_preview(clip, sample.filepath, text, ctx.panel.state.method or "gradcam")
        except ValueError as error:  # e.g. a method for the other image tower: say so in the panel
            ctx.panel.set_data("map", None)
            ctx.panel.set_state("summary", f"Cannot draw this map: {error}")
            return
        ctx.panel.set_data("map", preview.data_url)
        ctx.panel.set_state("summary", preview.summary)

    def render(self, ctx):
        panel = types.Object()
        panel.str("text", label="Text", on_change=self.on_change_query)
        models = types.Dropdown()
        for name in model_names():
            models.add_choice(name, label=name)
        panel.enum("model", model_names(), default="shapes-rn", label="Model", view=models,
                   on_change=self.on_change_query)  # fmt: skip
        methods = types.Dropdown()
        for name in method_names():
            methods.add_choice(name, label=method_label(name))
        panel.enum("method", method_names(), default="gradcam", label="Method", view=methods,
                   on_change=self.on_change_query)  # fmt: skip
        panel.md(ctx.panel.state.summary or "Type a text to see its map on the open sample.", name="result")
        panel.view("map", types.ImageView(alt="CLIPCAM map of the text on the open sample"))
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, px=2, py=2))


def register(plugin):
    """FiftyOne's plugin entry point."""
    plugin.register(LocalizeWithClipcam)
    plugin.register(EvaluateAgainstGroundTruth)
    plugin.register(ClipcamMapPanel)
