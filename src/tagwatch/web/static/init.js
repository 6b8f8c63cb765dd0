import { initAll } from "/static/vendor/govuk-frontend/govuk-frontend.min.js";
initAll();
