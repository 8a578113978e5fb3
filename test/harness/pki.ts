// The PKI of a test run, made like `skiff up` makes it (see internal/pki/testing.ts).
export { foreignCa, testPki, type TestPki } from "../../internal/pki/testing.ts";
