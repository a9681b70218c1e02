/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "codechat-cmd.h"
#include "codechat-settings.h"

/* codechat init [--server URL] [--nick NAME] [--token TOKEN]
 *
 * Asks for what the flags did not say when stdin is a terminal (with the
 * current settings as defaults), takes the flags alone otherwise; checks
 * that the server answers and accepts the nick with that token; only then
 * saves the server and nick in GSettings and the token in the Secret
 * Service or the tokens file, and says what it saved. */

typedef struct {
	CodechatApplication *app;  /* (owned) */
	CodechatConnection *conn;  /* (owned) */
	gchar *server;		   /* (owned) */
	gchar *nick;		   /* (owned) */
	gchar *token;		   /* (owned) (nullable) */
	gboolean save_token;	   /* given by --token or typed in */
	CodechatTokenSource found; /* where the token came from otherwise */
} InitState;

static void
init_state_free(InitState *state)
{
	g_clear_object(&state->conn);
	g_clear_object(&state->app);
	g_free(state->server);
	g_free(state->nick);
	if (state->token != NULL)
		memset(state->token, 0, strlen(state->token));
	g_free(state->token);
	g_free(state);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(InitState, init_state_free)

/* (nullable): one line from stdin without its newline, %NULL at the end */
static gchar *
read_line(void)
{
	g_autoptr(GString) line = g_string_new(NULL);
	int c;

	while ((c = fgetc(stdin)) != EOF && c != '\n')
		g_string_append_c(line, (gchar)c);
	if (c == EOF && line->len == 0)
		return NULL;
	return g_strstrip(g_string_free(g_steal_pointer(&line), FALSE));
}

/* (nullable): an answer, @fallback for an empty one, %NULL at the end */
static gchar *
prompt(const gchar *question, const gchar *fallback)
{
	g_autofree gchar *answer = NULL;

	if (fallback != NULL && fallback[0] != '\0')
		g_print("%s [%s]: ", question, fallback);
	else
		g_print("%s: ", question);
	fflush(stdout);
	answer = read_line();
	if (answer == NULL) {
		g_print("\n");
		return NULL;
	}
	if (answer[0] == '\0' && fallback != NULL)
		return g_strdup(fallback);
	return g_steal_pointer(&answer);
}

/* the terminal as it was before the secret's question, for a signal that
 * ends the program while echo is off */
static struct termios secret_saved;
static const int secret_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static void
secret_signal_handler(int signum)
{
	/* both async-signal-safe */
	tcsetattr(STDIN_FILENO, TCSANOW, &secret_saved);
	signal(signum, SIG_DFL);
	raise(signum);
}

/* (nullable): a secret, not echoed; %NULL at the end of the input */
static gchar *
prompt_secret(const gchar *question)
{
	struct termios quiet;
	struct sigaction action = {.sa_handler = secret_signal_handler};
	struct sigaction previous[G_N_ELEMENTS(secret_signals)];
	gboolean restore = FALSE;
	gchar *answer;

	/* echo off before the question: what is typed once it shows must not
	 * be echoed, nor thrown away (no TCSAFLUSH: that drops typed-ahead input) */
	if (tcgetattr(STDIN_FILENO, &secret_saved) == 0) {
		quiet = secret_saved;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		sigemptyset(&action.sa_mask);
		for (gsize i = 0; i < G_N_ELEMENTS(secret_signals); i++)
			sigaction(secret_signals[i], &action, &previous[i]);
		restore = tcsetattr(STDIN_FILENO, TCSANOW, &quiet) == 0;
	}
	g_print("%s: ", question);
	fflush(stdout);
	answer = read_line();
	if (restore) {
		tcsetattr(STDIN_FILENO, TCSANOW, &secret_saved);
		for (gsize i = 0; i < G_N_ELEMENTS(secret_signals); i++)
			sigaction(secret_signals[i], &previous[i], NULL);
	}
	g_print("\n");
	return answer;
}

/* asks until the answer passes @check; %FALSE at the end of the input */
static gboolean
prompt_checked(const gchar *question,
	       const gchar *fallback,
	       gboolean (*check)(const gchar *, gchar **, GError **),
	       gchar **out)
{
	for (;;) {
		g_autofree gchar *answer = prompt(question, fallback);
		g_autoptr(GError) error = NULL;
		if (answer == NULL)
			return FALSE;
		if (check(answer, out, &error))
			return TRUE;
		g_printerr("codechat: %s\n", error->message);
	}
}

static gboolean
check_server(const gchar *value, gchar **out, GError **error)
{
	return codechat_settings_check_server_url(value, out, error);
}

static gboolean
check_nick(const gchar *value, gchar **out, GError **error)
{
	g_autoptr(GError) error_local = NULL;

	if (!codechat_validate_nick(value, &error_local)) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_INVALID_ARGUMENT,
			    _("“%s” is not a valid nick: %s"),
			    value,
			    error_local->message);
		return FALSE;
	}
	*out = g_strdup(value);
	return TRUE;
}

static const gchar *
token_source_name(CodechatTokenSource source)
{
	switch (source) {
	case CODECHAT_TOKEN_SOURCE_ENVIRONMENT:
		return "environment";
	case CODECHAT_TOKEN_SOURCE_KEYRING:
		return "keyring";
	case CODECHAT_TOKEN_SOURCE_FILE:
		return "file";
	case CODECHAT_TOKEN_SOURCE_NONE:
	default:
		return "none";
	}
}

static void
report(InitState *state, CodechatTokenSource token_where, gboolean token_saved)
{
	CodechatOutput *output = codechat_application_get_output(state->app);
	g_autofree gchar *token_file = codechat_token_file_path();

	if (codechat_output_is_json(output)) {
		g_autoptr(JsonObject) obj = json_object_new();
		json_object_set_string_member(obj, "server-url", state->server);
		json_object_set_string_member(obj, "nickname", state->nick);
		json_object_set_string_member(obj, "token", token_source_name(token_where));
		json_object_set_boolean_member(obj, "token_saved", token_saved);
		codechat_output_json(output, obj);
		return;
	}
	g_print(_("Saved in GSettings (%s):\n"), APPLICATION_ID);
	g_print("  server-url  %s\n", state->server);
	g_print("  nickname    %s\n", state->nick);
	switch (token_where) {
	case CODECHAT_TOKEN_SOURCE_KEYRING:
		g_print(token_saved ? _("Token saved in the Secret Service (keyring).\n")
				    : _("Token: the one kept in the Secret Service (keyring).\n"));
		break;
	case CODECHAT_TOKEN_SOURCE_FILE:
		if (token_saved)
			g_print(_("Token saved in %s (readable only by you).\n"), token_file);
		else
			g_print(_("Token: the one kept in %s.\n"), token_file);
		break;
	case CODECHAT_TOKEN_SOURCE_ENVIRONMENT:
		g_print(_("Token: from CODECHAT_TOKEN, not saved.\n"));
		break;
	case CODECHAT_TOKEN_SOURCE_NONE:
	default:
		g_print(_("No token: the server did not ask for one.\n"));
		break;
	}
}

static void
connected_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(InitState) state = user_data;
	g_autoptr(GError) error = NULL;
	GSettings *settings = codechat_settings_get();
	CodechatTokenSource token_where = state->found;
	g_autoptr(GVariant) old_server = NULL;

	if (!codechat_connection_connect_finish(CODECHAT_CONNECTION(source), result, &error)) {
		g_prefix_error(&error, _("nothing saved: "));
		codechat_application_close_and_finish(state->app,
						      state->conn,
						      g_steal_pointer(&error));
		return;
	}
	g_debug("%s accepted %s", state->server, state->nick);

	/* the token first: the one step that can fail for reasons of its own */
	if (state->save_token && state->token != NULL) {
		if (!codechat_token_store(state->server,
					  state->nick,
					  state->token,
					  &token_where,
					  &error)) {
			g_prefix_error(&error, _("nothing saved: the token could not be kept: "));
			codechat_application_close_and_finish(state->app,
							      state->conn,
							      g_steal_pointer(&error));
			return;
		}
	}
	/* then both settings, or neither */
	old_server = g_settings_get_user_value(settings, CODECHAT_SETTINGS_SERVER_URL);
	if (!codechat_settings_set(settings,
				   CODECHAT_SETTINGS_SERVER_URL,
				   g_variant_new_string(state->server),
				   &error) ||
	    !codechat_settings_set(settings,
				   CODECHAT_SETTINGS_NICKNAME,
				   g_variant_new_string(state->nick),
				   &error)) {
		if (old_server != NULL)
			g_settings_set_value(settings, CODECHAT_SETTINGS_SERVER_URL, old_server);
		else
			g_settings_reset(settings, CODECHAT_SETTINGS_SERVER_URL);
		g_settings_sync();
		codechat_application_close_and_finish(state->app,
						      state->conn,
						      g_steal_pointer(&error));
		return;
	}
	report(state, token_where, state->save_token && state->token != NULL);
	codechat_application_close_and_finish(state->app, state->conn, NULL);
}

void
codechat_cmd_init(CodechatApplication *app)
{
	g_autoptr(InitState) state = g_new0(InitState, 1);
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) args = NULL;
	g_autofree gchar *token = NULL;
	g_autoptr(CodechatConnection) conn = NULL;
	const gchar *server_flag;
	const gchar *nick_flag;
	gboolean interactive;
	const GOptionEntry entries[] = {
	    {"token",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &token,
	     N_("Account token, from “codechatd user add”"),
	     N_("TOKEN")},
	    {NULL},
	};

	if (!codechat_application_parse_options(app, entries, FALSE, &args))
		return;
	if (!codechat_application_check_no_args(app, args))
		return;
	/* before any question: whether the answers can be kept at all */
	if (!codechat_settings_check_writable(codechat_settings_get(), &error)) {
		codechat_application_finish(app, g_steal_pointer(&error));
		return;
	}

	state->app = g_object_ref(app);
	server_flag = codechat_application_get_server_option(app);
	nick_flag = codechat_application_get_nick_option(app);
	interactive =
	    isatty(STDIN_FILENO) && !codechat_output_is_json(codechat_application_get_output(app));

	if (server_flag != NULL || !interactive) {
		state->server = g_strdup(codechat_application_get_server(app));
	} else if (!prompt_checked(_("Server URL"),
				   codechat_application_get_server(app),
				   check_server,
				   &state->server)) {
		codechat_application_finish(app,
					    g_error_new_literal(CODECHAT_ERROR,
								CODECHAT_ERROR_INVALID_ARGUMENT,
								_("no answer: nothing saved")));
		return;
	}

	if (nick_flag != NULL || !interactive) {
		if (!check_nick(codechat_application_get_nick(app), &state->nick, &error)) {
			codechat_application_finish(app, g_steal_pointer(&error));
			return;
		}
	} else if (!prompt_checked(_("Nick"),
				   codechat_application_get_nick(app),
				   check_nick,
				   &state->nick)) {
		codechat_application_finish(app,
					    g_error_new_literal(CODECHAT_ERROR,
								CODECHAT_ERROR_INVALID_ARGUMENT,
								_("no answer: nothing saved")));
		return;
	}

	if (token != NULL && token[0] != '\0') {
		state->token = g_steal_pointer(&token);
		state->save_token = TRUE;
	} else if (interactive) {
		g_autofree gchar *typed =
		    prompt_secret(_("Token (from “codechatd user add”; empty for none or to keep "
				    "the saved one)"));
		if (typed == NULL) {
			codechat_application_finish(
			    app,
			    g_error_new_literal(CODECHAT_ERROR,
						CODECHAT_ERROR_INVALID_ARGUMENT,
						_("no answer: nothing saved")));
			return;
		}
		if (typed[0] != '\0') {
			state->token = g_steal_pointer(&typed);
			state->save_token = TRUE;
		}
	}
	if (state->token == NULL)
		state->token = codechat_token_lookup(state->server, state->nick, &state->found);

	g_debug("checking %s as %s", state->server, state->nick);
	conn = codechat_connection_new(state->server, state->nick, state->token);
	state->conn = g_object_ref(conn);
	codechat_connection_connect_async(conn, NULL, connected_cb, g_steal_pointer(&state));
}
