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

	setlocale(LC_ALL, "");
	bindtextdomain(GETTEXT_PACKAGE, LOCALEDIR);
	bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
	textdomain(GETTEXT_PACKAGE);
	g_set_prgname("codechat");
	codechat_application_setup_logging();

	app = codechat_application_new();
	g_application_run(G_APPLICATION(app), argc, argv);
	/* g_application_run() forgets the status once its loop ran */
	return codechat_application_get_exit_status(app);
}
