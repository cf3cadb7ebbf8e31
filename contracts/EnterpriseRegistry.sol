// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @title EnterpriseRegistry
/// @notice Permissioned membership registry of the traceability ledger.
/// Governance (admin) accounts register enterprises, give them role flags and an
/// identifier prefix of the form `88.<industry>.<enterprise>`, activate or
/// deactivate them, and bind dedicated anchoring accounts to them. The
/// enterprise account itself always counts as one of its anchoring accounts.
contract EnterpriseRegistry {
    // ------------------------------------------------------------------ roles
    uint32 public constant MANUFACTURER = 1;
    uint32 public constant SUPPLIER = 2;
    uint32 public constant CORE_ENTERPRISE = 4;
    uint32 public constant BANK = 8;
    uint32 public constant AUDITOR = 16;
    uint32 public constant REGULATOR = 32;
    /// @notice Union of every defined role flag.
    uint32 public constant ALL_ROLES = 63;

    // ------------------------------------------------- person roles (GB 26860)
    /// @notice Work ticket issuer (签发人).
    uint32 public constant TICKET_ISSUER = 1;
    /// @notice Permitting officer (许可人).
    uint32 public constant PERMITTING_OFFICER = 2;
    /// @notice Person in charge of the work (工作负责人).
    uint32 public constant PERSON_IN_CHARGE = 4;
    /// @notice Work crew member (工作班成员).
    uint32 public constant CREW_MEMBER = 8;
    /// @notice Union of every person role flag.
    uint32 public constant ALL_PERSON_ROLES = 15;

    /// @notice Maximum length of a prefix in bytes.
    uint256 public constant MAX_PREFIX_LENGTH = 64;

    // ------------------------------------------------------------------ types
    struct Enterprise {
        string name;
        string prefix;
        uint32 roles;
        bool active;
        bool exists;
    }

    /// A named person (employee) acting under an enterprise, with GB 26860 role flags and a
    /// free-text qualification (e.g. "issue tickets: 110 kV Xinzhuang substation").
    struct Person {
        address enterprise;
        uint32 roles;
        bool active;
        string qualification;
    }

    // ------------------------------------------------------------------ state
    mapping(address => bool) public isAdmin;
    uint256 public adminCount;

    mapping(address => Enterprise) private _enterprises;
    address[] private _enterpriseList;
    /// keccak256(prefix) => enterprise account
    mapping(bytes32 => address) private _prefixOwner;

    /// dedicated anchoring account => enterprise it anchors for
    mapping(address => address) private _anchorerEnterprise;
    /// enterprise => its dedicated anchoring accounts (the enterprise itself excluded)
    mapping(address => address[]) private _anchorers;
    /// dedicated anchoring account => 1-based index in _anchorers[enterprise]
    mapping(address => uint256) private _anchorerIndex;

    /// person account => Person (enterprise == address(0) when unknown)
    mapping(address => Person) private _persons;
    /// enterprise => its person accounts
    mapping(address => address[]) private _personsOf;

    // ----------------------------------------------------------------- events
    event PersonRegistered(address indexed enterprise, address indexed person, uint32 roles, string qualification);
    event PersonUpdated(address indexed person, uint32 roles, bool active, string qualification);
    event AdminAdded(address indexed admin, address indexed by);
    event AdminRemoved(address indexed admin, address indexed by);
    event EnterpriseRegistered(address indexed account, string name, uint32 roles, string prefix);
    event EnterpriseUpdated(address indexed account, uint32 roles, bool active);
    event AnchoringAccountAdded(address indexed enterprise, address indexed anchorer);
    event AnchoringAccountRemoved(address indexed enterprise, address indexed anchorer);

    // ----------------------------------------------------------------- errors
    error NotAdmin(address caller);
    error NoAdmins();
    error ZeroAddress();
    error AlreadyAdmin(address account);
    error UnknownAdmin(address account);
    error LastAdmin(address account);
    error EmptyName();
    error InvalidRoles(uint32 roles);
    error InvalidPrefix(string prefix);
    error PrefixTaken(string prefix, address owner);
    error EnterpriseExists(address account);
    error UnknownEnterprise(address account);
    error AccountIsAnchorer(address account, address enterprise);
    error AnchorerIsEnterprise(address anchorer);
    error AnchorerAlreadyAssigned(address anchorer, address enterprise);
    error NotAnchoringAccount(address enterprise, address anchorer);
    error IndexOutOfRange(uint256 index, uint256 count);
    error NotAdminOrEnterprise(address caller, address enterprise);
    error InvalidPersonRoles(uint32 roles);
    error PersonExists(address person);
    error UnknownPerson(address person);
    error AccountIsPerson(address account);

    // -------------------------------------------------------------- modifiers
    modifier onlyAdmin() {
        if (!isAdmin[msg.sender]) revert NotAdmin(msg.sender);
        _;
    }

    modifier knownEnterprise(address account) {
        if (!_enterprises[account].exists) revert UnknownEnterprise(account);
        _;
    }

    // ------------------------------------------------------------ constructor
    constructor(address[] memory admins) {
        if (admins.length == 0) revert NoAdmins();
        for (uint256 i = 0; i < admins.length; ++i) {
            _addAdmin(admins[i]);
        }
    }

    // ------------------------------------------------------------- governance
    function addAdmin(address account) external onlyAdmin {
        _addAdmin(account);
    }

    function removeAdmin(address account) external onlyAdmin {
        if (!isAdmin[account]) revert UnknownAdmin(account);
        if (adminCount == 1) revert LastAdmin(account);
        isAdmin[account] = false;
        adminCount -= 1;
        emit AdminRemoved(account, msg.sender);
    }

    // ------------------------------------------------------------ enterprises
    function registerEnterprise(address account, string calldata name, uint32 roles, string calldata prefix)
        external
        onlyAdmin
    {
        if (account == address(0)) revert ZeroAddress();
        if (_enterprises[account].exists) revert EnterpriseExists(account);
        address owningEnterprise = _anchorerEnterprise[account];
        if (owningEnterprise != address(0)) revert AccountIsAnchorer(account, owningEnterprise);
        if (_persons[account].enterprise != address(0)) revert AccountIsPerson(account);
        if (bytes(name).length == 0) revert EmptyName();
        _checkRoles(roles);
        if (!_validPrefix(bytes(prefix))) revert InvalidPrefix(prefix);
        bytes32 key = keccak256(bytes(prefix));
        address owner = _prefixOwner[key];
        if (owner != address(0)) revert PrefixTaken(prefix, owner);

        _prefixOwner[key] = account;
        _enterprises[account] = Enterprise({name: name, prefix: prefix, roles: roles, active: true, exists: true});
        _enterpriseList.push(account);
        emit EnterpriseRegistered(account, name, roles, prefix);
    }

    function setActive(address account, bool active) external onlyAdmin knownEnterprise(account) {
        Enterprise storage e = _enterprises[account];
        e.active = active;
        emit EnterpriseUpdated(account, e.roles, active);
    }

    function setRoles(address account, uint32 roles) external onlyAdmin knownEnterprise(account) {
        _checkRoles(roles);
        Enterprise storage e = _enterprises[account];
        e.roles = roles;
        emit EnterpriseUpdated(account, roles, e.active);
    }

    // ------------------------------------------------------ anchoring accounts
    function addAnchoringAccount(address enterprise, address anchorer)
        external
        onlyAdmin
        knownEnterprise(enterprise)
    {
        if (anchorer == address(0)) revert ZeroAddress();
        if (_enterprises[anchorer].exists) revert AnchorerIsEnterprise(anchorer);
        if (_persons[anchorer].enterprise != address(0)) revert AccountIsPerson(anchorer);
        address current = _anchorerEnterprise[anchorer];
        if (current != address(0)) revert AnchorerAlreadyAssigned(anchorer, current);

        _anchorerEnterprise[anchorer] = enterprise;
        _anchorers[enterprise].push(anchorer);
        _anchorerIndex[anchorer] = _anchorers[enterprise].length;
        emit AnchoringAccountAdded(enterprise, anchorer);
    }

    function removeAnchoringAccount(address enterprise, address anchorer)
        external
        onlyAdmin
        knownEnterprise(enterprise)
    {
        if (_anchorerEnterprise[anchorer] != enterprise) revert NotAnchoringAccount(enterprise, anchorer);

        address[] storage list = _anchorers[enterprise];
        uint256 idx = _anchorerIndex[anchorer] - 1;
        uint256 last = list.length - 1;
        if (idx != last) {
            address moved = list[last];
            list[idx] = moved;
            _anchorerIndex[moved] = idx + 1;
        }
        list.pop();
        delete _anchorerIndex[anchorer];
        delete _anchorerEnterprise[anchorer];
        emit AnchoringAccountRemoved(enterprise, anchorer);
    }

    // ----------------------------------------------------------------- persons
    /// @notice Register `person` (its own account) under `enterprise` with GB 26860 role flags
    /// (TICKET_ISSUER | PERMITTING_OFFICER | PERSON_IN_CHARGE | CREW_MEMBER) and a qualification.
    /// Callable by a governance admin or by the enterprise account itself.
    function registerPerson(address enterprise, address person, uint32 roles, string calldata qualification)
        external
        knownEnterprise(enterprise)
    {
        if (!isAdmin[msg.sender] && msg.sender != enterprise) revert NotAdminOrEnterprise(msg.sender, enterprise);
        if (person == address(0)) revert ZeroAddress();
        if (_persons[person].enterprise != address(0)) revert PersonExists(person);
        if (_enterprises[person].exists || _anchorerEnterprise[person] != address(0)) revert AccountIsPerson(person);
        if (roles == 0 || (roles & ~ALL_PERSON_ROLES) != 0) revert InvalidPersonRoles(roles);
        _persons[person] = Person({enterprise: enterprise, roles: roles, active: true, qualification: qualification});
        _personsOf[enterprise].push(person);
        emit PersonRegistered(enterprise, person, roles, qualification);
    }

    /// @notice Change a person's roles, qualification and active flag (admin or its enterprise).
    function updatePerson(address person, uint32 roles, string calldata qualification, bool active) external {
        Person storage p = _persons[person];
        if (p.enterprise == address(0)) revert UnknownPerson(person);
        if (!isAdmin[msg.sender] && msg.sender != p.enterprise) revert NotAdminOrEnterprise(msg.sender, p.enterprise);
        if (roles == 0 || (roles & ~ALL_PERSON_ROLES) != 0) revert InvalidPersonRoles(roles);
        p.roles = roles;
        p.qualification = qualification;
        p.active = active;
        emit PersonUpdated(person, roles, active, qualification);
    }

    /// @notice A person's record; `enterprise == address(0)` when `person` is not registered.
    function getPerson(address person)
        external
        view
        returns (address enterprise, uint32 roles, string memory qualification, bool active)
    {
        Person storage p = _persons[person];
        return (p.enterprise, p.roles, p.qualification, p.active);
    }

    /// @notice True when `person` is registered, active, and its enterprise is active.
    function isActivePerson(address person) public view returns (bool) {
        Person storage p = _persons[person];
        return p.enterprise != address(0) && p.active && isActive(p.enterprise);
    }

    /// @notice True when `person` is an active person holding every flag in `role`.
    function hasPersonRole(address person, uint32 role) external view returns (bool) {
        return isActivePerson(person) && role != 0 && (_persons[person].roles & role) == role;
    }

    /// @notice Person accounts registered under `enterprise`.
    function personsOf(address enterprise) external view returns (address[] memory) {
        return _personsOf[enterprise];
    }

    /// @notice Transaction permissioning used by the validators: an active enterprise, one of its
    /// anchoring accounts, or one of its active persons.
    function isPermittedSender(address account) external view returns (bool) {
        address enterprise = enterpriseOfAnchorer(account);
        if (enterprise != address(0) && isActive(enterprise)) return true;
        return isActivePerson(account);
    }

    // ------------------------------------------------------------------ views
    function getEnterprise(address account)
        external
        view
        returns (string memory name, uint32 roles, string memory prefix, bool active, bool exists)
    {
        Enterprise storage e = _enterprises[account];
        return (e.name, e.roles, e.prefix, e.active, e.exists);
    }

    /// @notice True when `account` is a registered, active enterprise.
    function isActive(address account) public view returns (bool) {
        Enterprise storage e = _enterprises[account];
        return e.exists && e.active;
    }

    /// @notice Membership = registered and active enterprise.
    function isMember(address account) external view returns (bool) {
        return isActive(account);
    }

    /// @notice True when `account` has every flag in `role` and is an active enterprise.
    function hasRole(address account, uint32 role) external view returns (bool) {
        return isActive(account) && role != 0 && (_enterprises[account].roles & role) == role;
    }

    /// @notice Enterprise on whose behalf `account` anchors: the account itself if it is an
    /// enterprise, the owning enterprise for a dedicated anchoring account, else address(0).
    function enterpriseOfAnchorer(address account) public view returns (address) {
        if (_enterprises[account].exists) return account;
        return _anchorerEnterprise[account];
    }

    /// @notice True when `account` is an active enterprise or an anchoring account of one.
    function isActiveAnchorer(address account) external view returns (bool) {
        address enterprise = enterpriseOfAnchorer(account);
        return enterprise != address(0) && isActive(enterprise);
    }

    /// @notice Dedicated anchoring accounts of `enterprise` (the enterprise itself excluded).
    function anchoringAccounts(address enterprise) external view returns (address[] memory) {
        return _anchorers[enterprise];
    }

    /// @notice Enterprise account owning `prefix`, or address(0).
    function enterpriseByPrefix(string calldata prefix) external view returns (address) {
        return _prefixOwner[keccak256(bytes(prefix))];
    }

    function enterpriseCount() external view returns (uint256) {
        return _enterpriseList.length;
    }

    function enterpriseAt(uint256 index) external view returns (address) {
        if (index >= _enterpriseList.length) revert IndexOutOfRange(index, _enterpriseList.length);
        return _enterpriseList[index];
    }

    // --------------------------------------------------------------- internal
    function _addAdmin(address account) private {
        if (account == address(0)) revert ZeroAddress();
        if (isAdmin[account]) revert AlreadyAdmin(account);
        isAdmin[account] = true;
        adminCount += 1;
        emit AdminAdded(account, msg.sender);
    }

    function _checkRoles(uint32 roles) private pure {
        if (roles == 0 || (roles & ~ALL_ROLES) != 0) revert InvalidRoles(roles);
    }

    /// @dev `88.<industry>.<enterprise>`: literal "88", then exactly two more non-empty
    /// dot-separated segments of ASCII letters, digits or '-'.
    function _validPrefix(bytes calldata p) private pure returns (bool) {
        uint256 n = p.length;
        if (n < 6 || n > MAX_PREFIX_LENGTH) return false;
        if (p[0] != "8" || p[1] != "8" || p[2] != ".") return false;
        uint256 dots = 0;
        uint256 segmentLength = 0;
        for (uint256 i = 3; i < n; ++i) {
            bytes1 c = p[i];
            if (c == ".") {
                if (segmentLength == 0) return false;
                dots += 1;
                segmentLength = 0;
            } else if (
                (c >= "0" && c <= "9") || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c == "-"
            ) {
                segmentLength += 1;
            } else {
                return false;
            }
        }
        return dots == 1 && segmentLength != 0;
    }
}
