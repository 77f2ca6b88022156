/* The subcommands of ppx. Each takes the arguments after its name
 * (argv[0] is the subcommand's name) and returns ppx's exit status, or
 * does not return (record exits with its command's status). */
#ifndef PPX_COMMANDS_H
#define PPX_COMMANDS_H

int cmd_record(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_threads(int argc, char **argv);

#endif
