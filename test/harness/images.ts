// Test images come from the same builder `skiff up` uses for its example app.
export * from "../../internal/images/busybox.ts";
