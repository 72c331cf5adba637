// Overview: reorder the license servers (admin). The order is the console_server_order setting.
(() => {
  "use strict";
  Console.pages.overview = (root) => {
    root.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-move]");
      if (!button) return;
      const cards = [...root.querySelectorAll("[data-server-key]")];
      const keys = cards.map((card) => card.dataset.serverKey);
      const from = keys.indexOf(button.closest("[data-server-key]").dataset.serverKey);
      const to = button.dataset.move === "up" ? from - 1 : from + 1;
      if (to < 0 || to >= keys.length) return;
      [keys[from], keys[to]] = [keys[to], keys[from]];
      await Console.busy(button, async () => {
        try {
          await Console.api("PATCH", "/api/v1/admin/settings", { changes: { console_server_order: keys } });
        } catch (error) {
          Console.fail(document.getElementById("page-message"), error);
          return;
        }
        await Console.refresh("servers");
        // Keep the keyboard on the card that moved: its same button, or the other one at an end.
        const card = root.querySelector(`[data-server-key="${CSS.escape(keys[to])}"]`);
        (card?.querySelector(`button[data-move="${button.dataset.move}"]:not([disabled])`)
          ?? card?.querySelector("button[data-move]:not([disabled])"))?.focus();
      });
    });
  };
})();
