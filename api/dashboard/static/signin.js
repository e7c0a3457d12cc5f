// The sign-in prompt: asks for the API token when the API answers 401, and
// keeps it in sessionStorage (this tab only, gone when it closes).

const KEY = "jobsched.apiToken";
// What a browser can send in a header: printable Latin-1.
const SENDABLE = /^[\x20-\x7e\xa0-\xff]+$/;

export function storedToken() {
  return sessionStorage.getItem(KEY);
}

let waiting = null;  // one prompt, however many calls wait for it

// `refused`: the token the API just refused, or null when none was sent.
export function askForToken(refused) {
  if (refused && storedToken() !== refused) {
    return Promise.resolve();  // a newer token was given meanwhile: use it
  }
  const dialog = document.getElementById("sign-in");
  const message = document.getElementById("sign-in-error");
  if (refused) {
    sessionStorage.removeItem(KEY);
    message.textContent = "The API refused this token.";
    showSignOut();
  }
  if (!waiting) {
    waiting = new Promise((resolve) => {
      const form = document.getElementById("sign-in-form");
      const input = document.getElementById("sign-in-token");
      const submit = (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token || !SENDABLE.test(token)) {
          message.textContent = token ? "A token holds printable characters only."
            : "Enter the token.";
          return;
        }
        sessionStorage.setItem(KEY, token);
        form.removeEventListener("submit", submit);
        input.value = "";
        message.textContent = "";
        dialog.close();
        waiting = null;
        showSignOut();
        resolve();
      };
      form.addEventListener("submit", submit);
    });
    if (!dialog.open) dialog.showModal();
    document.getElementById("sign-in-token").focus();
  }
  return waiting;
}

function showSignOut() {
  document.getElementById("sign-out").hidden = !storedToken();
}

export function setUpSignIn() {
  const dialog = document.getElementById("sign-in");
  // The page can do nothing without the token: Escape does not dismiss it.
  dialog.addEventListener("cancel", (event) => event.preventDefault());
  document.getElementById("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    window.location.reload();
  });
  showSignOut();
}
