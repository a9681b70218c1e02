/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>

#include "codechat-application.h"

int
main(int argc, char **argv)
{
	g_autoptr(CodechatApplication) app = NULL;
	/* CODECHAT_LOCALEDIR, when set, replaces LOCALEDIR: it lets a program
	 * run from the build tree find the catalogues built there (the tests
	 * set it to <build>/po); it only says where to read them from */
	const gchar *localedir = g_getenv("CODECHAT_LOCALEDIR");

	setlocale(LC_ALL, "");
	bindtextdomain(GETTEXT_PACKAGE,
		       localedir != NULL && localedir[0] != '\0' ? localedir : LOCALEDIR);
	bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
	textdomain(GETTEXT_PACKAGE);
	g_set_prgname("codechat");
	codechat_application_setup_logging();

	app = codechat_application_new();
	g_application_run(G_APPLICATION(app), argc, argv);
	/* g_application_run() forgets the status once its loop ran */
	return codechat_application_get_exit_status(app);
}
