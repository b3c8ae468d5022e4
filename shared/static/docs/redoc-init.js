// Starts ReDoc on the API's own document (a file, for the same reason as swagger-init.js).
window.addEventListener("load", () => {
  Redoc.init("/openapi.json", { hideDownloadButton: false }, document.getElementById("redoc"));
});
