/* Leaflet.draw's buttons and hints in the page's language (both pages draw). */

export function localiseDraw(t) {
  const d = L.drawLocal;
  d.draw.toolbar.actions = { title: t("draw_cancel_title"), text: t("draw_cancel") };
  d.draw.toolbar.finish = { title: t("draw_finish_title"), text: t("draw_finish") };
  d.draw.toolbar.undo = { title: t("draw_undo_title"), text: t("draw_undo") };
  d.draw.toolbar.buttons = { polygon: t("draw_polygon"), rectangle: t("draw_rectangle"), circle: t("draw_circle"),
    polyline: t("draw_polyline"), marker: t("draw_marker"), circlemarker: t("draw_marker") };
  d.draw.handlers.circle = { tooltip: { start: t("draw_circle_start") }, radius: t("draw_radius") };
  d.draw.handlers.rectangle = { tooltip: { start: t("draw_rectangle_start") } };
  d.draw.handlers.simpleshape = { tooltip: { end: t("draw_shape_end") } };
  d.draw.handlers.polygon = { tooltip: { start: t("draw_polygon_start"), cont: t("draw_polygon_cont"), end: t("draw_polygon_end") } };
  d.draw.handlers.polyline.error = t("draw_error");
  d.draw.handlers.polyline.tooltip = { start: t("draw_line_start"), cont: t("draw_line_cont"), end: t("draw_line_end") };
  d.edit.toolbar.actions = { save: { title: t("draw_save_title"), text: t("draw_save") }, cancel: { title: t("draw_cancel_edit"), text: t("draw_cancel") }, clearAll: { title: t("draw_clear_title"), text: t("draw_clear") } };
  d.edit.toolbar.buttons = { edit: t("draw_edit"), editDisabled: t("draw_nothing"), remove: t("draw_remove"), removeDisabled: t("draw_nothing_remove") };
  d.edit.handlers.edit.tooltip = { text: t("draw_edit_text"), subtext: t("draw_edit_subtext") };
  d.edit.handlers.remove.tooltip = { text: t("draw_remove_text") };
}
